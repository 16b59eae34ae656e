"""Data: readers for raw BP4D / DISFA and prepared lists, face alignment and
preparation (``mgrr-prepare``), the training Dataset and class weights.

Every reader returns one :class:`FrameTable` (labels keyed by AU number); bad input
raises an error naming file, row, expected and found, or, with ``skip_bad=True``, is
skipped and counted (:class:`SkipLog`). The 3-fold partition is in
:mod:`mgrr_pyg.data.protocol`; the synthetic generator in :mod:`mgrr_pyg.data.synthetic`.
"""
from .align import align_face, alignment_transform, estimate_similarity, transform_points, warp_image
from .dataset import PreparedListDataset
from .frames import MISSING_LABEL, BadInputError, FrameRecord, FrameTable, SkipLog
from .landmarks import read_landmark_csv
from .prepare import prepare_dataset
from .prepared import read_class_weights, read_prepared, read_prior, write_prepared
from .raw import detect_layout, read_bp4d, read_disfa
from .weights import class_weights

__all__ = [
    "BadInputError",
    "FrameRecord",
    "FrameTable",
    "MISSING_LABEL",
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
    "read_landmark_csv",
    "read_prepared",
    "read_prior",
    "transform_points",
    "warp_image",
    "write_prepared",
]
