"""Configuration of the synthetic face generator: what to generate, at which size, from
which seed, and the named presets.

Sizes of the presets (decided; see ``docs/synthetic-calibration.md``):

========  =======  =====================================  =============================
preset    dataset  subjects x sequences x frames          frames
========  =======  =====================================  =============================
tiny      BP4D     6 (2 per part) x 2 tasks (T1, T2) x 8    96
tiny      DISFA    6 (2 per part) x 1 x 16                  96
default   BP4D     41 x 4 tasks (T1-T4) x 18                2952
default   DISFA    27 x 1 x 80                              2160
tied      BP4D     as default                               2952
tied      DISFA    as default                               2160
========  =======  =====================================  =============================

``tied`` has the sizes of ``default`` and another AU structure
(:data:`~.expressions.AU_STRUCTURES`): some AUs are drawn weak (their image cue at 15 %)
but tied to strong ones by the expression prototypes, so that relational reasoning has
something to find (``docs/synthetic-truth.md``).

Every written frame stands for ``frame_step`` (20) frames of the simulated video
(25 fps), so an 18-frame BP4D task covers about 14 s of behaviour: several AU episodes
(each 2-7 s, i.e. 2-9 written frames, so neighbouring frames stay correlated). Covering
more behaviour per written frame gives a small dataset more distinct expressions. BP4D frame numbers are the video
frame numbers (``offset + k * frame_step``, ``offset`` >= 1 and varying per sequence, as
in the real release); DISFA frames are numbered ``0 .. N-1`` as the real layout requires.
"""
from __future__ import annotations

import dataclasses
import warnings
import zlib
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from mgrr_pyg.data.protocol import PARTITION, subjects as protocol_subjects
from mgrr_pyg.utils import records

#: Bumped whenever the generator's output for a given configuration changes; stored in the
#: manifest so that re-running a newer generator into an older folder is an error.
GENERATOR_VERSION = 1

DATASETS = ("BP4D", "DISFA")
BP4D_TASKS = tuple(f"T{i}" for i in range(1, 9))


def _first_per_part(dataset: str, count: int) -> tuple[str, ...]:
    return tuple(s for p in (1, 2, 3) for s in PARTITION[dataset][p][:count])


#: Named sizes. ``subjects=None`` means every subject of the dataset's partition.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "tiny": {
        "BP4D": dict(subjects=_first_per_part("BP4D", 2), tasks=("T1", "T2"), frames_per_task=8),
        "DISFA": dict(subjects=_first_per_part("DISFA", 2), frames_per_task=16),
    },
    "default": {
        "BP4D": dict(subjects=None, tasks=("T1", "T2", "T3", "T4"), frames_per_task=18),
        "DISFA": dict(subjects=None, frames_per_task=80),
    },
    "tied": {
        "BP4D": dict(subjects=None, tasks=("T1", "T2", "T3", "T4"), frames_per_task=18,
                     au_structure="tied"),
        "DISFA": dict(subjects=None, frames_per_task=80, au_structure="tied"),
    },
}


@dataclass(frozen=True)
class SynthConfig:
    """What :func:`~mgrr_pyg.data.synthetic.generate` writes.

    Args:
        dataset: ``"BP4D"`` or ``"DISFA"`` (the raw layout and label format written).
        subjects: subject ids from the dataset's partition; ``None`` = all of them.
            (default: ``None``)
        tasks: BP4D task names ``T1..T8`` (ignored for DISFA, which has one sequence per
            subject). (default: ``("T1", "T2", "T3", "T4")``)
        frames_per_task: frames written per BP4D task / per DISFA subject. (default: ``18``)
        frame_step: simulated video frames between two written frames. (default: ``20``)
        image_size: side of the square unaligned frames, pixels. (default: ``256``)
        seed: the seed every random choice derives from. (default: ``0``)
        jpeg_quality: (min, max) JPEG quality of the capture compression. (default: ``(72, 95)``)
        uncoded_rate: BP4D only, the approximate share of label entries coded 9 (not coded).
            (default: ``0.02``)
        au_structure: how the AUs relate and how visible each is, a key of
            :data:`~.expressions.AU_STRUCTURES` (``"standard"`` or ``"tied"``).
            (default: ``"standard"``)
    """

    dataset: str = "BP4D"
    subjects: tuple[str, ...] | None = None
    tasks: tuple[str, ...] = ("T1", "T2", "T3", "T4")
    frames_per_task: int = 18
    frame_step: int = 20
    image_size: int = 256
    seed: int = 0
    jpeg_quality: tuple[int, int] = (72, 95)
    uncoded_rate: float = 0.02
    preset: str | None = field(default=None, compare=False)
    au_structure: str = "standard"

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset: expected one of {DATASETS}, found {self.dataset!r}")
        if self.subjects is None:
            object.__setattr__(self, "subjects", protocol_subjects(self.dataset))
        else:
            object.__setattr__(self, "subjects", tuple(self.subjects))
            known = set(protocol_subjects(self.dataset))
            unknown = [s for s in self.subjects if s not in known]
            if unknown:
                raise ValueError(
                    f"subjects: {unknown} are not {self.dataset} subjects of the standard "
                    f"partition; expected ids from {', '.join(protocol_subjects(self.dataset))}")
            if len(set(self.subjects)) != len(self.subjects):
                raise ValueError(f"subjects: each subject once, found {list(self.subjects)}")
            if not self.subjects:
                raise ValueError("subjects: expected at least one subject, found none")
        object.__setattr__(self, "tasks", tuple(self.tasks))
        if self.dataset == "BP4D":
            bad = [t for t in self.tasks if t not in BP4D_TASKS]
            if bad or not self.tasks or len(set(self.tasks)) != len(self.tasks):
                raise ValueError(
                    f"tasks: expected distinct BP4D task names from {BP4D_TASKS}, found {list(self.tasks)}")
        if int(self.frames_per_task) < 1:
            raise ValueError(f"frames_per_task: expected >= 1, found {self.frames_per_task}")
        if int(self.frame_step) < 1:
            raise ValueError(f"frame_step: expected >= 1, found {self.frame_step}")
        if int(self.image_size) < 224:
            raise ValueError(
                f"image_size: expected >= 224 (frames must be larger than the 200x200 aligned "
                f"face), found {self.image_size}")
        low, high = (int(q) for q in self.jpeg_quality)
        if not 1 <= low <= high <= 100:
            raise ValueError(f"jpeg_quality: expected 1 <= min <= max <= 100, found {self.jpeg_quality}")
        object.__setattr__(self, "jpeg_quality", (low, high))
        if not 0.0 <= float(self.uncoded_rate) < 0.5:
            raise ValueError(f"uncoded_rate: expected 0 <= rate < 0.5, found {self.uncoded_rate}")
        from .expressions import au_structure_named  # (expressions imports this module)

        au_structure_named(self.au_structure)

    @classmethod
    def from_preset(cls, preset: str = "default", dataset: str = "BP4D", **overrides: Any) -> "SynthConfig":
        """The configuration of a named preset, with ``None`` overrides ignored."""
        if preset not in PRESETS:
            raise ValueError(f"preset: expected one of {sorted(PRESETS)}, found {preset!r}")
        if dataset not in DATASETS:
            raise ValueError(f"dataset: expected one of {DATASETS}, found {dataset!r}")
        values = dict(PRESETS[preset][dataset])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(dataset=dataset, preset=preset, **values)

    @property
    def sequences(self) -> tuple[str, ...]:
        """Sequence names per subject: the BP4D tasks, or ``("",)`` for DISFA."""
        return self.tasks if self.dataset == "BP4D" else ("",)

    @property
    def num_frames(self) -> int:
        return len(self.subjects) * len(self.sequences) * int(self.frames_per_task)

    def to_dict(self) -> dict[str, Any]:
        """Plain types, everything that determines the output (and the preset name)."""
        values = dataclasses.asdict(self)
        values["subjects"] = list(self.subjects)
        values["tasks"] = list(self.tasks) if self.dataset == "BP4D" else []
        values["jpeg_quality"] = list(self.jpeg_quality)
        values["generator_version"] = GENERATOR_VERSION
        if values["au_structure"] == "standard":
            # Recorded only when it is not the standard one, so that the sets made before
            # AU structures existed keep their digests (cache folder names, done markers,
            # manifests): their files are unchanged.
            del values["au_structure"]
        return values

    def content_dict(self) -> dict[str, Any]:
        """:meth:`to_dict` without the fields that do not change the files (the preset name)."""
        values = self.to_dict()
        values.pop("preset")
        return values


def stable_hash(text: str) -> int:
    """A process-independent 32-bit hash (Python's ``hash`` is salted per process)."""
    return zlib.crc32(text.encode("utf-8"))


def rng_for(seed: int, dataset: str, *parts: str | int, purpose: str) -> np.random.Generator:
    """The random generator of one thing (an identity, a sequence, a frame): a pure function
    of the seed and the thing's names, so work order and parallelism never change output."""
    words: list[int] = [int(seed) & 0xFFFFFFFF, stable_hash(dataset), stable_hash(purpose)]
    words += [p if isinstance(p, int) else stable_hash(p) for p in parts]
    return np.random.default_rng(np.random.SeedSequence(words))


def resolve_subjects(dataset: str, subjects: Sequence[str] | None) -> tuple[str, ...]:
    """``subjects`` checked against the partition, or all subjects of ``dataset``."""
    return SynthConfig(dataset=dataset, subjects=subjects).subjects


def config_differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """Deprecated: use :func:`mgrr_pyg.utils.records.config_differences`."""
    warnings.warn("mgrr_pyg.data.synthetic.config.config_differences is deprecated; use "
                  "mgrr_pyg.utils.records.config_differences", DeprecationWarning, stacklevel=2)
    return records.config_differences(a, b)


__all__ = [
    "BP4D_TASKS",
    "DATASETS",
    "GENERATOR_VERSION",
    "PRESETS",
    "SynthConfig",
    "resolve_subjects",
    "rng_for",
    "stable_hash",
]
