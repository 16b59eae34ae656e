"""Training / test samples from prepared lists, with the paper's augmentation."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from mgrr_pyg.facs import ALIGNED_SIZE, CENTRE_CROP_OFFSET, CROP_SIZE, flip_landmarks

from .frames import MISSING_LABEL
from .images import ImageReadError, read_image
from .prepared_lists import list_file, read_prepared


class PreparedListDataset(Dataset):
    r"""Aligned faces of one prepared-list prefix as model-ready samples.

    Training samples take a random ``176 x 176`` crop of the ``200 x 200`` aligned face
    and a horizontal flip with probability 1/2 (landmarks mirrored, ``x' = 175 - x``,
    and permuted by :data:`mgrr_pyg.facs.FLIP_PERMUTATION`; labels unchanged); test
    samples take the centre crop (offset 12). Pixels are scaled to ``[-1, 1]``.

    The augmentation of sample ``i`` is a deterministic function of
    ``(seed, epoch, i)`` (:meth:`augmentation`), so two processes or two runs see the
    same crops and flips whatever the loader's worker count. Call :meth:`set_epoch`
    before iterating each epoch; with a ``DataLoader`` keep
    ``persistent_workers=False`` (the default) so the workers see the new epoch.

    Args:
        root: Folder with the prepared lists (and ``prepare.json`` if written by
            :func:`~mgrr_pyg.data.prepare_dataset`).
        prefix (str): List prefix, e.g. ``"BP4D_combine_1_2"`` or ``"BP4D_part3"``.
        train (bool): Random crop + flip (True) or centre crop (False).
        aus (optional): AU numbers to return, in this order (ValueError naming missing
            AUs). (default: every AU of the lists)
        seed (int, optional): Augmentation seed. (default: :obj:`0`)
        image_root (optional): Folder the listed paths are relative to.
            (default: from the manifest, else ``<root>/images`` or ``root``)
        au_columns (optional): AU numbers of the list's label columns when they cannot
            be inferred (see :func:`~mgrr_pyg.data.read_prepared`).

    Raises:
        MissingImagesError: a listed image is missing, a folder or empty (every row is
            checked here, with one ``stat`` each, naming the list file, lines and paths).

    Shapes:
        - **image:** :math:`(3, 176, 176)` float in ``[-1, 1]``
        - **landmarks:** :math:`(49, 2)` float, crop pixels
        - **labels:** :math:`(n,)` float 0 / 1 (0 where not coded)
        - **label_mask:** :math:`(n,)` bool, True where coded
        - **interocular:** float :math:`d_o` (square root of the biocular file)
        - **index:** int
    """

    def __init__(self, root: str | os.PathLike, prefix: str, train: bool,
                 aus: Sequence[int] | None = None, seed: int = 0,
                 image_root: str | os.PathLike | None = None,
                 au_columns: Sequence[int] | None = None):
        self.root = Path(root)
        self.prefix = prefix
        self.train = bool(train)
        self.seed = int(seed)
        self.epoch = 0
        # every listed image is looked for now, not when a loader worker first reads it
        self.table = read_prepared(root, prefix, aus=aus, au_columns=au_columns,
                                   image_root=image_root, check_images=True)
        self.aus: tuple[int, ...] = self.table.aus
        # [N, n] int64, MISSING_LABEL = not coded; shared (read-only) with the samples.
        self.labels = torch.from_numpy(self.table.labels)
        self._targets = torch.from_numpy((self.table.labels == 1).astype(np.float32))
        self._mask = torch.from_numpy(self.table.labels != MISSING_LABEL)
        self._landmarks = self.table.landmarks.astype(np.float32)  # [N, 49, 2]
        self._interocular = np.sqrt(self.table.biocular)

    def __len__(self) -> int:
        return len(self.table)

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation of epoch ``epoch``."""
        self.epoch = int(epoch)

    def augmentation(self, index: int) -> tuple[int, int, bool]:
        """``(x offset, y offset, flipped)`` of sample ``index`` at the current epoch."""
        if not self.train:
            return CENTRE_CROP_OFFSET, CENTRE_CROP_OFFSET, False
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        x, y = rng.integers(0, ALIGNED_SIZE - CROP_SIZE + 1, size=2)
        return int(x), int(y), bool(rng.random() < 0.5)

    def _load_crop(self, index: int, x: int, y: int) -> Image.Image:
        path = self.table.image_path[index]
        where = f"{list_file(self.root, self.prefix, 'path')}, line {index + 1}"
        try:
            image = read_image(path)
        except ImageReadError as err:
            raise ValueError(f"{where}: expected a readable image {path}, {err.problem}") from None
        if image.size != (ALIGNED_SIZE, ALIGNED_SIZE):
            raise ValueError(f"{where}: expected a {ALIGNED_SIZE}x{ALIGNED_SIZE} aligned "
                             f"face in {path}, found {image.size[0]}x{image.size[1]}")
        return image.crop((x, y, x + CROP_SIZE, y + CROP_SIZE))

    def __getitem__(self, index: int) -> dict:
        index = int(index)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} frames")
        x, y, flip = self.augmentation(index)
        crop = self._load_crop(index, x, y)
        landmarks = self._landmarks[index] - np.array([x, y], dtype=np.float32)  # [49, 2]
        if flip:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            landmarks = flip_landmarks(landmarks, CROP_SIZE)
        # NumPy, not torch, for the per-pixel work: single-threaded, so loader workers do
        # not fight the training process for the intra-op thread pool.
        pixels = np.asarray(crop, dtype=np.float32).transpose(2, 0, 1)  # [3, 176, 176]
        image = np.empty(pixels.shape, dtype=np.float32)
        np.multiply(pixels, 1.0 / 127.5, out=image)
        image -= 1.0
        return {
            "image": torch.from_numpy(image),
            "landmarks": torch.from_numpy(np.ascontiguousarray(landmarks)),
            # clones: a view would carry the whole [N, n] storage across worker queues
            "labels": self._targets[index].clone(),
            "label_mask": self._mask[index].clone(),
            "interocular": float(self._interocular[index]),
            "index": index,
        }

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.prefix}, {len(self)} frames, AUs {list(self.aus)}, "
                f"train={self.train})")


__all__ = ["PreparedListDataset"]
