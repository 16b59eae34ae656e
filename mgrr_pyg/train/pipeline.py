"""One training run from a :class:`~mgrr_pyg.train.config.TrainConfig`: data, fold,
model, training, evaluation on the fold's test part, and the written results.

:func:`run_training` is what ``mgrr-train`` / ``examples/train_bp4d.py`` run:

0. every check that needs no data, before any data is generated or prepared
   (:func:`check_run`): the options, the model configuration (preset, ablation,
   ``--set`` overrides: the model is built on the meta device), ``--init-from``, and the
   checkpoint in the output folder that the run would resume from;
1. the data (:mod:`mgrr_pyg.train.data_sources`): ``data_root`` raw (prepared into a
   cache folder) or prepared lists; with no ``data_root`` the synthetic dataset is
   generated (or reused) in the cache (``$MGRR_CACHE`` or ``~/.cache/mgrr_pyg``) and
   prepared there;
2. the fold (its mapping to parts is printed) and its frames
   (:mod:`mgrr_pyg.train.fold_frames`): an optional validation split of training-part
   subjects, optional frame budgets;
3. class weights and the co-occurrence prior from the *training* frames only;
4. the model (``create_model``, :func:`build_model`), ``set_prior`` for
   ``prior_init="cooccurrence"``, ``--init-from`` a checkpoint of another AU set;
5. :class:`~mgrr_pyg.train.trainer.Trainer` (resumes from ``<output>/last.pt``);
6. evaluation of the test part with the last epoch's weights, or the epoch chosen on
   the validation split — the test part never chooses — and label-only baselines;
7. the outputs (:mod:`mgrr_pyg.train.outputs`): ``results.md`` / ``results.csv`` /
   ``results.json``, ``predictions_test.npz`` / ``.csv`` in the output folder (rank 0
   only).

Console messages go through ``log`` (:mod:`mgrr_pyg.train.logging`), on rank 0 only.
"""
from __future__ import annotations

import json
import time
import warnings
from importlib import import_module
from pathlib import Path
from typing import Any, Optional, Sequence

import torch

from mgrr_pyg.data import class_weights, protocol
from mgrr_pyg.facs import AU_SETS
from mgrr_pyg.train import data_sources, outputs
from mgrr_pyg.train.checkpoint import build_metadata
from mgrr_pyg.train.config import TrainConfig
from mgrr_pyg.train.distributed import DistContext, barrier, init_distributed
from mgrr_pyg.train.fold_frames import fold_frames
from mgrr_pyg.train.logging import Log, console, main_process_only
from mgrr_pyg.train.metrics import label_only_baselines
from mgrr_pyg.train.trainer import Trainer, check_resumable, seed_everything
from mgrr_pyg.utils.io import atomic_save_text


# -- model -------------------------------------------------------------------------------
def _preset_and_overrides(config: TrainConfig, aus: Sequence[int]) -> tuple[str, dict]:
    from mgrr_pyg.model import get_config, list_presets

    preset, overrides = config.resolved_model()
    if preset not in list_presets():
        raise ValueError(f"preset (--preset): expected one of {list_presets()}, found {preset!r}")
    if "aus" not in overrides and tuple(get_config(preset).aus) != tuple(aus):
        overrides["aus"] = tuple(aus)
    return preset, overrides


def check_model_config(config: TrainConfig, aus: Sequence[int]):
    """Build the run's model on the meta device (no memory, no random draw, a fraction
    of a second) so an unknown preset, a misspelt or invalid ``--set`` override or an
    unknown layer name is found before any data is generated or prepared; returns that
    meta-device model."""
    import difflib

    from mgrr_pyg.model import MGRRConfig, create_model

    known = sorted(MGRRConfig.override_keys())  # flat keys, sections, dotted paths
    for key, value in config.model_overrides.items():
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            raise ValueError(
                f"--set {key}={value!r} (model_overrides): unknown model config key {key!r}"
                + (f" (did you mean {close[0]!r}?)" if close else "")
                + f"; known keys: {', '.join(known)}"
            )
    preset, overrides = _preset_and_overrides(config, aus)
    try:
        with torch.random.fork_rng(devices=[]), torch.device("meta"):
            model = create_model(preset, **overrides)
    except (ValueError, TypeError, KeyError) as err:
        given = " ".join(f"--set {k}={v!r}" for k, v in config.model_overrides.items())
        reason = str(err) if isinstance(err, ValueError) else f"a value of the wrong type ({err})"
        raise ValueError(
            f"model config of preset {preset!r}"
            + (f" with ablation {config.ablation!r}" if config.ablation else "")
            + (f" and {given}" if given else "") + f": {reason}"
        ) from None
    return model


def check_run(config: TrainConfig, ctx: DistContext, output: Path) -> None:
    """Every check of a run that needs no data (see the module docstring, step 0)."""
    model = check_model_config(config, AU_SETS[config.dataset])
    if config.amp == "fp16" and ctx.device.type != "cuda":
        raise ValueError("amp: 'fp16' autocast needs a CUDA device; use 'bf16' on CPU or 'none'")
    if config.image_root is not None and not Path(config.image_root).expanduser().is_dir():
        raise FileNotFoundError(f"image_root (--image-root): {config.image_root} is not a folder")
    if config.branch_from and not (output / "last.pt").exists():
        from mgrr_pyg.train.checkpoint import load_checkpoint
        from mgrr_pyg.train.trainer import check_resume_config

        if not Path(config.branch_from).exists():
            raise FileNotFoundError(f"branch_from (--branch-from): checkpoint {config.branch_from} "
                                    "does not exist")
        state = load_checkpoint(config.branch_from, hint="point --branch-from at an end-of-epoch "
                                "checkpoint of a run of this dataset (<run>/epochs/epoch-NN.pt)")
        check_resume_config(state, config, config.branch_from, branch=True)
    if config.init_from:
        from mgrr_pyg.train.checkpoint import load_checkpoint

        if not Path(config.init_from).exists():
            raise FileNotFoundError(f"init_from (--init-from): checkpoint {config.init_from} "
                                    "does not exist")
        from mgrr_pyg.train.transfer import check_init_from

        state = load_checkpoint(config.init_from, hint="point --init-from at a checkpoint written "
                                "by mgrr-train (the last.pt or best.pt of a run on the other dataset)")
        check_init_from(state, list(model.state_dict()), config.init_from)
    check_resumable(config, output)


def build_model(config: TrainConfig, aus: Sequence[int]):
    """``create_model(preset, **overrides)`` with the dataset's AU set; returns
    ``(model, preset, overrides)``."""
    from mgrr_pyg.model import create_model

    preset, overrides = _preset_and_overrides(config, aus)
    seed_everything(config.seed)
    return create_model(preset, **overrides), preset, overrides


# -- the run -----------------------------------------------------------------------------
def run_training(config: TrainConfig, callbacks: Sequence[Any] = (), log: Log = console,
                 dist_ctx: Optional[DistContext] = None) -> outputs.RunResult:
    """Train and evaluate one fold as described in the module docstring."""
    started = time.perf_counter()
    config.validate()
    ctx = dist_ctx if dist_ctx is not None else init_distributed(config.device)
    log = main_process_only(log, ctx.is_main)
    output = Path(config.output) if config.output else outputs.default_output(config)
    config = config.replace(output=str(output))
    if config.init_from and "{fold}" in config.init_from:  # one command for the three folds
        config = config.replace(init_from=config.init_from.replace("{fold}", str(config.fold)))
    check_run(config, ctx, output)  # before any data is generated or prepared
    fold = protocol.fold(config.dataset, config.fold)
    log(protocol.describe_folds(config.dataset))
    log(f"-> this run: {fold.describe()}")

    # Data: rank 0 generates / prepares, the others wait and reuse it.
    root = source = None
    if ctx.is_main:
        root, source = data_sources.prepared_root(config, log)
    barrier(ctx)
    if not ctx.is_main:
        root, source = data_sources.prepared_root(config, log)

    from mgrr_pyg.graphs import au_cooccurrence_prior
    from mgrr_pyg.model import MGRRLoss

    aus = AU_SETS[config.dataset]
    model, preset, overrides = build_model(config, aus)
    model_aus = tuple(model.config.aus)
    frames = fold_frames(config, root, fold, model_aus)
    train_set, test_set = frames.train_set, frames.test_set
    train_labels = frames.train_labels

    # Class weights and prior from the training frames only.
    weights = class_weights(train_labels)
    loss_fn = MGRRLoss(weights, lambda_align=config.lambda_align)
    if model.config.reasoning.prior_init == "cooccurrence":
        model.set_prior(au_cooccurrence_prior(train_labels))
    transfer = None
    if config.init_from:
        from mgrr_pyg.train.transfer import init_from_checkpoint

        transfer = init_from_checkpoint(model, config.init_from, adjacency=config.init_adjacency)
        log(f"initialised from {config.init_from}:\n{transfer.summary()}")
        source_fold = transfer.source.get("fold")
        if source_fold is not None and source_fold != config.fold:
            log(f"note: the checkpoint is of fold {source_fold}, this run is fold {config.fold}; "
                "docs/reproduce.md starts DISFA fold f from BP4D fold f (the datasets share no "
                "subject, so any fold is legal)")

    metadata = build_metadata(model_aus, config.dataset, config.fold, model_preset=preset,
                              train_prefix=fold.train_prefix, test_prefix=fold.test_prefix)
    curve_set = frames.curve_set(config.curve_frames)
    trainer = Trainer(model, loss_fn, train_set, config, val_dataset=frames.val_set,
                      curve_dataset=curve_set,
                      output_dir=output, aus=model_aus, metadata=metadata, model_name=preset,
                      callbacks=callbacks, dist_ctx=ctx, log=log, started=started)
    if ctx.is_main:
        atomic_save_text(output / "config.json", json.dumps(config.to_dict(), indent=2))
        atomic_save_text(output / "model_config.json", json.dumps(model.config.to_dict(), indent=2))
    n_params = sum(p.numel() for p in model.parameters())
    log(f"model: preset {preset!r}{' ' + str(overrides) if overrides else ''}, "
        f"{n_params / 1e6:.2f} M parameters; device {trainer.device}"
        + (f", {ctx.world_size} processes" if ctx.distributed else ""))
    log(f"frames: train {len(train_set)}, validation {len(frames.val_positions)}, "
        f"test {len(test_set)}; output {output}")
    history = trainer.fit()

    best_epoch = trainer.load_best()
    if best_epoch is not None:
        selection, reported = "epoch chosen on the validation subjects", best_epoch
    else:
        selection, reported = "last epoch", trainer.epoch
    test_eval = trainer.evaluate(test_set, desc="test")
    trainer.close()  # under DDP: release the wrapper before the process group goes (distributed.shutdown)
    baselines = label_only_baselines(train_labels, frames.test_labels, model_aus, seed=config.seed,
                                     threshold=config.threshold)
    info = {
        "source": source, "prepared_root": str(root), "preset": preset, "overrides": overrides,
        "parameters": n_params, "device": str(trainer.device), "world_size": ctx.world_size,
        "train_frames": len(train_set), "val_frames": int(len(frames.val_positions)),
        "val_subject_ids": frames.val_subject_ids, "test_frames": len(test_set),
        "train_subjects": frames.train_subjects, "test_subjects": frames.test_subjects,
        "resumed_from": trainer.resumed_from, "segments": trainer.segments,
        "seconds_this_segment": time.perf_counter() - started,
        "transfer": transfer.to_dict() if transfer is not None else None,
        "intensity_cut": _prepared_cut(root) if config.dataset == "DISFA" else None,
    }
    result = outputs.RunResult(output, config, test_eval.metrics, baselines, test_eval.landmarks,
                               reported, selection, history, trainer.elapsed_seconds,
                               fold.describe(), "", info)
    result.markdown = outputs.results_markdown(result)
    if ctx.is_main:
        outputs.write_outputs(result, output, test_eval, frames.test_frame_ids(), model_aus,
                              subjects=frames.test_frame_subjects())
        if curve_set is not None:
            from mgrr_pyg.train.curve import curve_from_history, curve_record, write_curve

            curve_labels = frames.test_part.labels.numpy()[frames.curve_positions(config.curve_frames)]
            write_curve(output, curve_record(curve_from_history(history), train_labels, curve_labels,
                                             model_aus, config, source="training"))
        log("\n" + result.markdown)
        log(f"written: {output}/{', '.join(outputs.OUTPUT_FILES)}, "
            f"last.pt{', best.pt' if best_epoch is not None else ''}, log.csv")
    barrier(ctx)
    return result


def _prepared_cut(root: Path) -> Optional[int]:
    """The DISFA intensity cut the prepared lists in ``root`` were binarised at (their
    ``prepare.json``), or None for lists without a manifest."""
    from mgrr_pyg.data.prepared_lists import PREPARED_MANIFEST

    manifest = Path(root) / PREPARED_MANIFEST
    return json.loads(manifest.read_text()).get("threshold") if manifest.is_file() else None


# Names that lived here before the run was split into data sources, fold frames and
# outputs: still importable from here, with a DeprecationWarning naming the new place.
_MOVED = {
    "cache_dir": "data_sources", "synthetic_name": "data_sources",
    "ensure_synthetic": "data_sources", "prepared_root": "data_sources",
    "choose_validation_subjects": "fold_frames", "strided": "fold_frames",
    "sampled": "fold_frames",
    "RunResult": "outputs", "default_output": "outputs", "results_markdown": "outputs",
}


def __getattr__(name: str):
    if name in _MOVED:
        module = f"mgrr_pyg.train.{_MOVED[name]}"
        warnings.warn(f"mgrr_pyg.train.pipeline.{name} is deprecated: it moved, use "
                      f"{module}.{name}", DeprecationWarning, stacklevel=2)
        return getattr(import_module(module), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["build_model", "check_model_config", "check_run", "run_training"]
