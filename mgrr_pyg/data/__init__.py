"""Data: readers for raw BP4D / DISFA and prepared lists, face alignment and
preparation (``mgrr-prepare``), the training Dataset and class weights.

One module per thing held:

- :mod:`~mgrr_pyg.data.raw`: the raw BP4D / DISFA layouts (``RAW_LAYOUTS``) and
  :func:`detect_layout`; :mod:`~mgrr_pyg.data.landmarks`: their landmark CSVs.
- :mod:`~mgrr_pyg.data.prepared_lists`: the prepared-list format (JAA-Net's) and its checks.
- :mod:`~mgrr_pyg.data.preparation`: the preparation, raw -> aligned faces + lists.
- :mod:`~mgrr_pyg.data.frames`: the :class:`FrameTable` every reader returns (labels keyed
  by AU number, :data:`MISSING_LABEL` = not coded).
- :mod:`~mgrr_pyg.data.bad_input`: what counts as a bad frame and what happens to it: an
  error naming file, row, expected and found, or, with ``skip_bad=True``, a skip counted
  by :class:`SkipLog`.
- :mod:`~mgrr_pyg.data.images`: the one image reader, :func:`read_image` (any encoding to
  upright 8-bit RGB, or an error naming the file); :mod:`~mgrr_pyg.data.align`: alignment.
- :mod:`~mgrr_pyg.data.dataset`: :class:`PreparedListDataset`; :mod:`~mgrr_pyg.data.weights`:
  class weights; :mod:`~mgrr_pyg.data.protocol`: the 3-fold partition;
  :mod:`mgrr_pyg.data.synthetic`: the synthetic generator.

``mgrr_pyg.data.prepare`` and ``mgrr_pyg.data.prepared`` are the deprecated names of
``preparation`` and ``prepared_lists``.
"""
from .align import align_face, alignment_transform, estimate_similarity, transform_points, warp_image
from .bad_input import BadInputError, SkipLog
from .dataset import PreparedListDataset
from .frames import MISSING_LABEL, FrameRecord, FrameTable
from .images import ImageReadError, read_image, to_rgb8
from .landmarks import read_landmark_csv
from .preparation import prepare_dataset
from .prepared_lists import (MissingImagesError, read_class_weights, read_prepared, read_prior,
                             write_prepared)
from .raw import detect_layout, read_bp4d, read_disfa
from .weights import class_weights

__all__ = [
    "BadInputError",
    "FrameRecord",
    "FrameTable",
    "ImageReadError",
    "MISSING_LABEL",
    "MissingImagesError",
    "PreparedListDataset",
    "SkipLog",
    "align_face",
    "alignment_transform",
    "class_weights",
    "detect_layout",
    "estimate_similarity",
    "prepare_dataset",
    "read_bp4d",
    "read_class_weights",
    "read_disfa",
    "read_image",
    "read_landmark_csv",
    "read_prepared",
    "read_prior",
    "to_rgb8",
    "transform_points",
    "warp_image",
    "write_prepared",
]
