"""Input a run can check without data is checked before any data is generated or
prepared; a checkpoint that is not one is described, with what to do about it."""
import os
import pickle
import zipfile

import numpy as np
import pytest
import torch

from mgrr_pyg.train.checkpoint import (
    CheckpointError,
    load_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
)
from mgrr_pyg.train.cli import main
from mgrr_pyg.train.config import TrainConfig
from mgrr_pyg.train.trainer import Trainer

from .toys import ToyDataset, ToyModel, toy_loss

#: A run on the tiny synthetic set: what it would generate goes into the cache.
TINY = ["--synthetic-preset", "tiny", "--preset", "tiny", "--epochs", "1", "--batch-size", "4",
        "--max-train-frames", "8", "--max-test-frames", "6", "--workers", "0", "--device", "cpu",
        "--no-progress", "--no-tensorboard"]


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("MGRR_CACHE", str(cache))
    return cache


def run_cli(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv, dataset="BP4D", prog="train_bp4d.py")
    err = capsys.readouterr().err
    assert info.value.code == 2, err
    assert err.startswith("train_bp4d.py: error: "), err
    return err


@pytest.mark.parametrize("extra, message", [
    (["--set", "num_layer=3"],
     "--set num_layer=3 (model_overrides): unknown model config key 'num_layer' "
     "(did you mean 'num_layers'?); known keys: "),
    (["--set", "num_layers=0"],
     "model config of preset 'tiny' and --set num_layers=0: num_layers: expected a positive int, found 0"),
    (["--set", "region_layer=NoSuchConv"], "unknown region layer 'NoSuchConv'"),
    (["--set", "stem_channels=3"], "--set stem_channels=3: a value of the wrong type"),
    (["--ablation", "setting3", "--set", "heads=3"],
     "with ablation 'setting3' and --set heads=3: heads: must divide embed_dim=32"),
    (["--amp", "fp16"], "amp: 'fp16' autocast needs a CUDA device"),
    (["--resume"], "resume: no checkpoint"),
    (["--resume", "--overwrite"], "resume / overwrite: --resume continues from <output>/last.pt"),
    (["--init-from", "no-such-file.pt"], "init_from (--init-from): checkpoint no-such-file.pt does not exist"),
    (["--image-root", "."], "image_root (--image-root): only used with prepared lists"),
], ids=["set-typo", "set-value", "set-layer", "set-type", "ablation-and-set", "fp16-on-cpu",
        "resume-without-checkpoint", "resume-and-overwrite", "init-from-missing", "image-root-synthetic"])
def test_config_errors_come_before_any_data(empty_cache, tmp_path, capsys, extra, message):
    out = tmp_path / "run"
    err = run_cli(TINY + ["--output", str(out)] + extra, capsys)
    assert message in err
    assert list(empty_cache.iterdir()) == []  # nothing generated, nothing prepared
    assert not out.exists()


def test_the_model_check_draws_no_random_numbers_and_allocates_nothing():
    """The default run's numerics stay as they were: the early model check uses the meta
    device, so the global RNG states the model initialisation starts from are untouched."""
    from mgrr_pyg.facs import AU_SETS
    from mgrr_pyg.train.pipeline import check_model_config

    torch.manual_seed(3)
    np.random.seed(3)
    torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()[1].copy()
    for preset in ("tiny", "mgrr_bp4d"):
        check_model_config(TrainConfig(preset=preset), AU_SETS["BP4D"])
    assert torch.equal(torch.get_rng_state(), torch_state)
    np.testing.assert_array_equal(np.random.get_state()[1], numpy_state)


# -- checkpoints that are not checkpoints --------------------------------------------------
class CallsCode:
    """Pickles as a call of ``print``: a file that would run code when unpickled."""

    def __reduce__(self):
        return (print, ("this ran while loading",))


def valid_checkpoint_bytes(tmp_path):
    from mgrr_pyg.model import create_model

    torch.manual_seed(0)
    path = save_checkpoint(tmp_path / "valid.pt", model=create_model("tiny"), epoch=1)
    return path.read_bytes()


def write_bad(path, kind, tmp_path):
    """Write a file of ``kind`` at ``path``; returns what the message must say it is."""
    if kind == "empty":
        path.write_bytes(b"")
        return "it is an empty file (0 bytes)"
    if kind == "truncated":
        data = valid_checkpoint_bytes(tmp_path)
        path.write_bytes(data[: len(data) // 2])
        return f"it is a damaged or truncated zip archive ({len(data) // 2} bytes"
    if kind == "text":
        path.write_text("epoch 3, loss 0.25\n")
        return "it is a text file (19 bytes) starting 'epoch 3, loss 0.25'"
    if kind == "other-zip":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("notes.txt", "hello")
        return "it is a zip archive that torch.save did not write"
    if kind == "pickle-with-code":
        torch.save({"model": CallsCode()}, path)
        return "print), which this package never runs"
    if kind == "plain-pickle":
        path.write_bytes(pickle.dumps({"epoch": 1}))
        return "it is a pickle stream"
    if kind == "state-dict":
        torch.save({"conv.weight": torch.zeros(2)}, path)
        return "found a dict without a 'kind' entry (keys: conv.weight), e.g. a bare state_dict"
    raise AssertionError(kind)


KINDS = ["empty", "truncated", "text", "other-zip", "pickle-with-code", "plain-pickle", "state-dict"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_bad_checkpoint_is_described_by_the_loaders(tmp_path, kind, capsys):
    path = tmp_path / "model.pt"
    what = write_bad(path, kind, tmp_path)
    for load in (load_checkpoint, model_from_checkpoint):
        with pytest.raises(CheckpointError) as info:
            load(path)
        message = str(info.value)
        assert message.startswith(f"checkpoint {path}: ") and what in message
        assert message.endswith("delete it or point at another checkpoint (one written by "
                                "mgrr_pyg.train)")
        assert "failed with )" not in message and "weights_only=False will" not in message
    assert "this ran while loading" not in capsys.readouterr().out


@pytest.mark.parametrize("kind", KINDS)
def test_a_bad_last_checkpoint_stops_the_command_and_names_overwrite(empty_cache, tmp_path,
                                                                     capsys, kind):
    out = tmp_path / "run"
    out.mkdir()
    what = write_bad(out / "last.pt", kind, tmp_path)
    err = run_cli(TINY + ["--output", str(out)], capsys)
    assert f"checkpoint {out / 'last.pt'}: " in err and what in err
    assert f"rerun with --overwrite to start afresh in {out} (deleting last.pt, best.pt" in err
    assert f"delete {out / 'last.pt'}" in err and "another --output folder" in err
    assert list(empty_cache.iterdir()) == []  # found before any data was made


def test_a_folder_where_the_checkpoint_should_be(tmp_path):
    (tmp_path / "last.pt").mkdir()
    with pytest.raises(CheckpointError, match=r"last.pt: is a folder, expected a checkpoint file"):
        load_checkpoint(tmp_path / "last.pt")


def test_an_incomplete_checkpoint_names_what_is_missing(tmp_path):
    from mgrr_pyg.train.checkpoint import CHECKPOINT_KIND, SCHEMA_VERSION

    torch.save({"kind": CHECKPOINT_KIND, "schema_version": SCHEMA_VERSION, "epoch": 1}, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="incomplete, it has no model, step_in_epoch, "
                                              "global_step entry"):
        load_checkpoint(tmp_path / "x.pt")


def toy_trainer(out, **changes):
    torch.manual_seed(0)
    cfg = TrainConfig(**{**dict(epochs=1, batch_size=4, lr=0.05, workers=0, progress=False,
                                tensorboard=False, output=str(out), device="cpu"), **changes})
    return Trainer(ToyModel(), toy_loss, ToyDataset(n=8), cfg, aus=(1, 2, 4), log=lambda m: None)


@pytest.mark.parametrize("kind", ["empty", "truncated"])
def test_overwrite_replaces_a_bad_checkpoint(tmp_path, kind):
    out = tmp_path / "run"
    out.mkdir()
    write_bad(out / "last.pt", kind, tmp_path)
    with pytest.raises(CheckpointError, match="--overwrite"):
        toy_trainer(out).fit()
    messages = []
    fresh = toy_trainer(out, overwrite=True)
    fresh.log = messages.append
    fresh.fit()
    assert fresh.resumed_from is None and fresh.epoch == 1
    assert messages == [f"--overwrite: deleted last.pt in {out}; starting afresh"]
    assert load_checkpoint(out / "last.pt")["epoch"] == 1
    assert os.path.getsize(out / "last.pt") > 0
