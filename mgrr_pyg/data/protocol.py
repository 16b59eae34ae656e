"""The standard subject-exclusive 3-fold protocol of BP4D and DISFA.

Fold ``f`` tests on part ``f`` and trains on the other two parts; the prepared-list
names follow JAA-Net (test ``<DATASET>_part{f}``, train ``<DATASET>_combine_{a}_{b}``).
ME-GraphAU numbers its folds the other way round (its fold 1 tests part 3), so
:func:`describe_folds` is printed wherever a fold is chosen.
"""
from __future__ import annotations

from dataclasses import dataclass

PARTITION: dict[str, dict[int, tuple[str, ...]]] = {
    "BP4D": {
        1: ("F001", "F002", "F008", "F009", "F010", "F016", "F018", "F023",
            "M001", "M004", "M007", "M008", "M012", "M014"),
        2: ("F003", "F005", "F011", "F013", "F020", "F022",
            "M002", "M005", "M010", "M011", "M013", "M016", "M017", "M018"),
        3: ("F004", "F006", "F007", "F012", "F014", "F015", "F017", "F019", "F021",
            "M003", "M006", "M009", "M015"),
    },
    "DISFA": {
        1: ("SN001", "SN002", "SN009", "SN010", "SN016", "SN026", "SN027", "SN030", "SN032"),
        2: ("SN006", "SN011", "SN012", "SN013", "SN018", "SN021", "SN024", "SN028", "SN031"),
        3: ("SN003", "SN004", "SN005", "SN007", "SN008", "SN017", "SN023", "SN025", "SN029"),
    },
}


def _check_dataset(dataset: str) -> str:
    if dataset not in PARTITION:
        raise ValueError(f"dataset: expected one of {sorted(PARTITION)}, found {dataset!r}")
    return dataset


@dataclass(frozen=True)
class Fold:
    """One fold of the protocol: train on ``train_parts``, test on ``test_part``."""

    dataset: str
    fold: int
    train_parts: tuple[int, int]
    test_part: int

    @property
    def train_prefix(self) -> str:
        a, b = self.train_parts
        return f"{self.dataset}_combine_{a}_{b}"

    @property
    def test_prefix(self) -> str:
        return f"{self.dataset}_part{self.test_part}"

    @property
    def train_subjects(self) -> tuple[str, ...]:
        return tuple(s for p in self.train_parts for s in PARTITION[self.dataset][p])

    @property
    def test_subjects(self) -> tuple[str, ...]:
        return PARTITION[self.dataset][self.test_part]

    def describe(self) -> str:
        a, b = self.train_parts
        return (
            f"{self.dataset} fold {self.fold}: train on parts {a}+{b} ({self.train_prefix}), "
            f"test on part {self.test_part} ({self.test_prefix})"
        )


def subjects(dataset: str) -> tuple[str, ...]:
    """All subject ids of ``dataset`` in partition order."""
    parts = PARTITION[_check_dataset(dataset)]
    return tuple(s for p in (1, 2, 3) for s in parts[p])


def part_of(dataset: str, subject: str) -> int:
    """The part (1-3) that ``subject`` belongs to."""
    for part, members in PARTITION[_check_dataset(dataset)].items():
        if subject in members:
            return part
    raise ValueError(
        f"subject {subject!r} belongs to no part of the {dataset} partition "
        f"(expected one of {', '.join(subjects(dataset))})"
    )


def fold(dataset: str, f: int) -> Fold:
    """Fold ``f`` (1, 2 or 3): tests on part ``f``, trains on the other two."""
    _check_dataset(dataset)
    if f not in (1, 2, 3):
        raise ValueError(f"fold: expected 1, 2 or 3, found {f!r}")
    a, b = (p for p in (1, 2, 3) if p != f)
    return Fold(dataset, f, (a, b), f)


def folds(dataset: str) -> list[Fold]:
    """The three folds of ``dataset``."""
    return [fold(dataset, f) for f in (1, 2, 3)]


def describe_folds(dataset: str) -> str:
    """A printable mapping of folds to parts (ME-GraphAU numbers folds the other way round)."""
    lines = [f.describe() for f in folds(dataset)]
    lines.append("(JAA-Net numbering: fold f tests part f; ME-GraphAU's fold 1 tests part 3.)")
    return "\n".join(lines)


__all__ = ["PARTITION", "Fold", "describe_folds", "fold", "folds", "part_of", "subjects"]
