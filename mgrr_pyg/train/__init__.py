"""Training and evaluation of MGRR-Net (optimisers and LR schedules by name: the paper's
SGD schedule and the quick AdamW one; checkpoints that resume bit for bit, DDP, mixed
precision), the protocol's metrics and tables, the 3-fold and ablation runners, and the
``mgrr-train`` command line."""
from .checkpoint import (
    SCHEMA_VERSION,
    CheckpointError,
    CheckpointWriteError,
    load_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
)
from .config import ABLATIONS, TrainConfig
from .metrics import (
    AUMetrics,
    evaluate_predictions,
    label_only_baselines,
    landmark_metrics,
    load_predictions,
    results_tables,
    save_predictions,
)
from .trainer import EvalOutput, Trainer
from .transfer import DISFA_FROM_BP4D, init_from_checkpoint, transfer_weights


def run_training(*args, **kwargs):
    """See :func:`mgrr_pyg.train.pipeline.run_training`."""
    from .pipeline import run_training as _run

    return _run(*args, **kwargs)


def run_folds(*args, **kwargs):
    """See :func:`mgrr_pyg.train.runners.run_folds`."""
    from .runners import run_folds as _run

    return _run(*args, **kwargs)


def run_ablation(*args, **kwargs):
    """See :func:`mgrr_pyg.train.runners.run_ablation`."""
    from .runners import run_ablation as _run

    return _run(*args, **kwargs)


__all__ = [
    "ABLATIONS",
    "AUMetrics",
    "CheckpointError",
    "CheckpointWriteError",
    "DISFA_FROM_BP4D",
    "EvalOutput",
    "SCHEMA_VERSION",
    "TrainConfig",
    "Trainer",
    "evaluate_predictions",
    "init_from_checkpoint",
    "label_only_baselines",
    "landmark_metrics",
    "load_predictions",
    "model_from_checkpoint",
    "results_tables",
    "run_ablation",
    "run_folds",
    "run_training",
    "save_predictions",
    "transfer_weights",
]
