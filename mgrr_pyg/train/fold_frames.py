"""The frames of one fold that a run trains, validates and tests on.

:func:`fold_frames` reads the fold's two parts from the prepared lists (every listed
image is looked for first), then

- holds out ``val_subjects`` training-part subjects as a validation split, if asked
  (:func:`choose_validation_subjects`: a seeded choice; validation frames are read
  without augmentation and strided to ``max_test_frames``);
- keeps a seeded random subset of ``max_train_frames`` training frames
  (:func:`sampled`) and an evenly strided subset of ``max_test_frames`` test frames
  (:func:`strided`): budgets for CPU-sized runs.

The test part never chooses anything: it is only evaluated.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from torch.utils.data import Dataset, Subset

from mgrr_pyg.data import MissingImagesError, PreparedListDataset
from mgrr_pyg.data.protocol import Fold
from mgrr_pyg.data.prepared_lists import list_file
from mgrr_pyg.train.config import TrainConfig
from mgrr_pyg.train.data_sources import missing_images_hint


def choose_validation_subjects(subjects: Sequence[str], val_subjects, seed: int) -> list[str]:
    """A seeded choice of ``val_subjects`` subjects (a count, or a fraction of them)."""
    unique = sorted(set(str(s) for s in subjects))
    if len(unique) < 2:
        raise ValueError(
            f"val_subjects: the training part has {len(unique)} subject(s); at least 2 are needed "
            "to hold some out for validation"
        )
    if isinstance(val_subjects, float):
        count = int(round(val_subjects * len(unique)))
    else:
        count = int(val_subjects)
    count = max(1, count)
    if count >= len(unique):
        raise ValueError(
            f"val_subjects: asked for {val_subjects!r} of {len(unique)} training subjects; leave at "
            "least one subject to train on"
        )
    rng = np.random.default_rng([seed, 7])
    return sorted(rng.choice(unique, size=count, replace=False).tolist())


def strided(n: int, budget: Optional[int]) -> np.ndarray:
    """``budget`` evenly spaced positions of ``range(n)`` (all when ``budget`` is None)."""
    if budget is None or budget >= n:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, budget).round().astype(np.int64))


def sampled(positions: np.ndarray, budget: Optional[int], seed: int) -> np.ndarray:
    """A seeded random subset of ``positions`` of size ``budget``, sorted."""
    if budget is None or budget >= len(positions):
        return positions
    rng = np.random.default_rng([seed, 11])
    return np.sort(rng.choice(positions, size=budget, replace=False))


def frame_ids(dataset) -> list[str]:
    """The frame of each position of ``dataset``: the relative image paths of its
    prepared list (``<prefix>_path.txt``), else ``subject/sequence/frame``, else the
    position."""
    try:
        lines = list_file(dataset.root, dataset.prefix, "path").read_text().splitlines()
        ids = [line.strip() for line in lines if line.strip()]
        if len(ids) == len(dataset):
            return ids
    except (AttributeError, OSError):
        pass
    table = getattr(dataset, "table", None)
    if table is not None:
        return [f"{s}/{q}/{f}" for s, q, f in zip(table.subject, table.sequence, table.frame)]
    return [str(i) for i in range(len(dataset))]


def frame_subjects(dataset) -> np.ndarray:
    """The subject of each position of ``dataset``."""
    table = getattr(dataset, "table", None)
    if table is not None and getattr(table, "subject", None) is not None:
        return np.asarray(table.subject, dtype=str)
    if hasattr(dataset, "subjects"):
        return np.asarray(dataset.subjects, dtype=str)
    raise ValueError("val_subjects: the training dataset does not tell the subject of each frame")


def _subject_count(dataset, positions: np.ndarray) -> Optional[int]:
    if getattr(dataset, "table", None) is None:
        return None
    return len(set(frame_subjects(dataset)[positions].tolist()))


@dataclass
class FoldFrames:
    """What :func:`fold_frames` chose: positions into the fold's two parts."""

    #: The whole training part (augmenting reader) and the whole test part.
    train_part: Dataset
    test_part: Dataset
    #: Positions in ``train_part`` that train / validate, and in ``test_part`` that test.
    train_positions: np.ndarray
    val_positions: np.ndarray
    test_positions: np.ndarray
    #: The held-out validation subjects (empty without ``val_subjects``).
    val_subject_ids: list
    #: The validation frames, read without augmentation (``None`` without a split).
    val_set: Optional[Dataset]

    def __post_init__(self) -> None:
        self.train_set = Subset(self.train_part, self.train_positions.tolist())
        self.test_set = Subset(self.test_part, self.test_positions.tolist())

    @property
    def train_labels(self) -> np.ndarray:
        """``[n_train, n_aus]`` labels of the training frames (0, 1, 9 = not coded)."""
        return self.train_part.labels.numpy()[self.train_positions]

    @property
    def test_labels(self) -> np.ndarray:
        """``[n_test, n_aus]`` labels of the test frames."""
        return self.test_part.labels.numpy()[self.test_positions]

    @property
    def train_subjects(self) -> Optional[int]:
        """How many subjects the training frames show (``None``: the lists do not say)."""
        return _subject_count(self.train_part, self.train_positions)

    @property
    def test_subjects(self) -> Optional[int]:
        """How many subjects the test frames show (``None``: the lists do not say)."""
        return _subject_count(self.test_part, self.test_positions)

    def curve_positions(self, frames: int) -> np.ndarray:
        """Positions in ``test_part`` of ``frames`` evenly spaced test frames (all of them
        when there are fewer): the learning-curve frames (``--curve-frames``)."""
        return self.test_positions[strided(len(self.test_positions), frames)]

    def curve_set(self, frames: int) -> Optional[Dataset]:
        """The learning-curve frames as a dataset, ``None`` for ``frames=0`` (no curve)."""
        if not frames:
            return None
        return Subset(self.test_part, self.curve_positions(frames).tolist())

    def test_frame_ids(self) -> list[str]:
        """The frame of each test position (:func:`frame_ids`), in test order."""
        ids = frame_ids(self.test_part)
        return [ids[i] for i in self.test_positions]

    def test_frame_subjects(self) -> Optional[list[str]]:
        """The subject of each test position, in test order; ``None`` when the test part
        does not tell (a dataset without a frame table)."""
        try:
            subjects = frame_subjects(self.test_part)
        except ValueError:
            return None
        return [str(subjects[i]) for i in self.test_positions]


def fold_frames(config: TrainConfig, root: Path, fold: Fold, aus: Sequence[int]) -> FoldFrames:
    """Read fold ``fold`` of the prepared lists in ``root`` for the model's ``aus`` and
    choose its training, validation and test frames (see the module docstring).

    Raises:
        MissingImagesError: listed images are not there (with what to do about it).
        ValueError: a part has no frame left, or the validation split cannot be made.
    """
    lists = dict(aus=aus, image_root=config.image_root)
    try:  # every listed image of both parts is looked for before training starts
        train_part = PreparedListDataset(root, fold.train_prefix, train=True, seed=config.seed, **lists)
        test_part = PreparedListDataset(root, fold.test_prefix, train=False, **lists)
    except MissingImagesError as err:
        raise err.with_hint(missing_images_hint(config, root)) from None

    train_positions = np.arange(len(train_part))
    val_set, val_ids, val_positions = None, [], np.zeros(0, np.int64)
    if config.val_subjects is not None:
        subjects = frame_subjects(train_part)
        val_ids = choose_validation_subjects(subjects, config.val_subjects, config.seed)
        is_val = np.isin(subjects, val_ids)
        train_positions = np.flatnonzero(~is_val)
        val_positions = np.flatnonzero(is_val)
        val_positions = val_positions[strided(len(val_positions), config.max_test_frames)]
        val_set = Subset(PreparedListDataset(root, fold.train_prefix, train=False, **lists),
                         val_positions.tolist())
    train_positions = sampled(train_positions, config.max_train_frames, config.seed)
    test_positions = strided(len(test_part), config.max_test_frames)
    frames = FoldFrames(train_part, test_part, train_positions, val_positions, test_positions,
                        val_ids, val_set)
    if len(frames.train_set) == 0 or len(frames.test_set) == 0:
        raise ValueError(f"fold {config.fold}: found {len(frames.train_set)} training and "
                         f"{len(frames.test_set)} test frames in {root}; both parts need frames")
    return frames


__all__ = ["FoldFrames", "choose_validation_subjects", "fold_frames", "frame_ids", "frame_subjects",
           "sampled", "strided"]
