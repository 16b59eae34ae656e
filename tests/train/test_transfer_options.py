"""--init-from as the paper runs DISFA: where the region adjacencies A start
(``init_adjacency``), checkpoints of another architecture (ablation settings, ``--set``
overrides: what matches loads, the rest starts fresh and is listed), a wrong file, and
the DISFA intensity cut set from ``mgrr-train`` (recorded, never reusing data binarised at
another cut)."""
import json

import numpy as np
import pytest
import torch
from torch import nn

from mgrr_pyg.facs import BP4D_AUS, DISFA_AUS
from mgrr_pyg.model import create_model
from mgrr_pyg.train.checkpoint import build_metadata, save_checkpoint
from mgrr_pyg.train.config import TrainConfig
from mgrr_pyg.train.transfer import init_from_checkpoint

# JAA-Net's DISFA <- BP4D mapping, typed from docs/protocol.md (not imported).
FROM_BP4D = {1: 1, 2: 2, 4: 4, 6: 6, 12: 12, 25: 23, 26: 17}
ADJACENCY = ("layers.0.region.adjacency", "layers.1.region.adjacency")  # the tiny preset: K = 2


@pytest.fixture()
def bp4d_checkpoint(tmp_path):
    """A tiny BP4D model whose A is 'learned' (random, far from any prior), saved."""
    torch.manual_seed(0)
    model = create_model("tiny")
    with torch.no_grad():
        for key in ADJACENCY:
            model.get_parameter(key).uniform_(-3.0, -1.0)
    path = save_checkpoint(tmp_path / "bp4d.pt", model=model, epoch=1,
                           model_config=model.config.to_dict(), model_name="tiny",
                           metadata=build_metadata(BP4D_AUS, "BP4D", 2, model_preset="tiny"))
    return path, {k: v.clone() for k, v in model.state_dict().items()}


def _disfa_with_prior(**overrides):
    torch.manual_seed(1)
    model = create_model("tiny", aus=DISFA_AUS, **overrides)
    rng = np.random.default_rng(3)
    prior = rng.uniform(0.0, 1.0, (8, 8))
    np.fill_diagonal(prior, 1.0)
    model.set_prior(prior)
    return model, torch.as_tensor(prior, dtype=torch.float32)


def test_default_adjacency_is_the_disfa_training_prior(bp4d_checkpoint):
    path, source = bp4d_checkpoint
    model, prior = _disfa_with_prior()
    report = init_from_checkpoint(model, path)
    state = model.state_dict()
    for key in ADJACENCY:  # exactly the prior set from the (here: made-up) DISFA fold
        torch.testing.assert_close(state[key], prior, rtol=0, atol=0)
        assert key in report.started_fresh
    # ... while the other per-AU weights still come from BP4D, AU by AU
    for i, au in enumerate(DISFA_AUS):
        if au in FROM_BP4D:
            j = BP4D_AUS.index(FROM_BP4D[au])
            assert torch.equal(state["local_heads.weight"][i], source["local_heads.weight"][j]), au
    assert torch.equal(state["stem.layer1.conv.weight"], source["stem.layer1.conv.weight"])
    record = report.to_dict()
    assert record["adjacency"] == "prior"
    assert record["source"]["dataset"] == "BP4D" and record["source"]["fold"] == 2
    assert set(ADJACENCY) <= set(record["started_fresh"])


def test_checkpoint_adjacency_is_bp4d_learned_a_remapped(bp4d_checkpoint):
    path, source = bp4d_checkpoint
    model, prior = _disfa_with_prior()
    report = init_from_checkpoint(model, path, adjacency="checkpoint")
    state = model.state_dict()
    i9 = DISFA_AUS.index(9)
    for key in ADJACENCY:
        for i, a in enumerate(DISFA_AUS):
            for k, b in enumerate(DISFA_AUS):
                if 9 in (a, b):  # AU9 has no BP4D row / column: the DISFA prior
                    expected = prior[i, k]
                else:
                    expected = source[key][BP4D_AUS.index(FROM_BP4D[a]), BP4D_AUS.index(FROM_BP4D[b])]
                assert state[key][i, k] == expected, (key, a, b)
        assert key not in report.started_fresh
    assert torch.equal(state["prior"], prior)  # the stored prior stays the DISFA fold's
    assert state[ADJACENCY[0]][i9, i9] == 1.0
    assert report.to_dict()["adjacency"] == "checkpoint"


def test_bad_adjacency_choice_and_checkpoint_without_init_from_are_errors(bp4d_checkpoint):
    model, _ = _disfa_with_prior()
    with pytest.raises(ValueError, match="expected one of .*prior.*checkpoint.*found 'learned'"):
        init_from_checkpoint(model, bp4d_checkpoint[0], adjacency="learned")
    with pytest.raises(ValueError, match="no --init-from is given"):
        TrainConfig(dataset="DISFA", init_adjacency="checkpoint")
    assert TrainConfig(dataset="DISFA", init_from="x.pt", init_adjacency="checkpoint")


@pytest.mark.parametrize("overrides", [{"num_layers": 3}, {"num_layers": 1}, {"d_v": 16},
                                       {"use_channel": False, "use_pixel": False}])
def test_other_architectures_load_what_matches_and_list_the_rest(bp4d_checkpoint, overrides):
    path, source = bp4d_checkpoint
    model, _ = _disfa_with_prior(**overrides)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = init_from_checkpoint(model, path)
    after = model.state_dict()
    # Independent expectation: a key of the model loads iff the checkpoint has it with the
    # same shape, or one that differs only along AU axes: 12 * b + r entries in BP4D,
    # 8 * b + r in DISFA (b per AU, r shared).
    def au_axis(s, t):
        b, rest = divmod(s - t, 12 - 8)
        return rest == 0 and b >= 1 and s - 12 * b >= 0 and t == 8 * b + (s - 12 * b)

    def loads(a, b):
        return a.dim() == b.dim() and all(s == t or au_axis(s, t) for s, t in zip(a.shape, b.shape))

    expected_fresh = {k for k, v in before.items() if k not in source or not loads(source[k], v)}
    assert expected_fresh or report.unused, "the override changes nothing: the test proves nothing"
    assert expected_fresh <= set(report.started_fresh)
    for key in expected_fresh:
        assert torch.equal(after[key], before[key]), key  # started fresh, untouched
    assert torch.equal(after["stem.layer1.conv.weight"], source["stem.layer1.conv.weight"])
    assert report.architecture_differences  # said in the console and results.json
    changed = set(overrides)
    assert {d.split(":")[0] for d in report.architecture_differences} == changed
    if overrides.get("num_layers") == 1:  # the checkpoint's layer 1 has no place: listed
        assert "layers.1.region.bias" in report.unused


def test_a_checkpoint_sharing_nothing_fails_clearly_and_changes_nothing(tmp_path):
    other = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    path = save_checkpoint(tmp_path / "other.pt", model=other, epoch=1,
                           metadata=build_metadata(BP4D_AUS, "BP4D", 1))
    model, _ = _disfa_with_prior()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"other\.pt: the checkpoint shares no weights with this "
                                         r"model.*0\.weight.*stem"):
        init_from_checkpoint(model, path)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


# -- from the command line -----------------------------------------------------------------
TINY = ["--synthetic-preset", "tiny", "--preset", "tiny", "--epochs", "1", "--batch-size", "4",
        "--max-train-frames", "8", "--max-test-frames", "6", "--workers", "0", "--device", "cpu",
        "--no-progress", "--no-tensorboard"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def _raw_intensities(raw_root, subject, au):
    """``frame index -> intensity`` straight from a DISFA label file (read here, not by
    the package's reader)."""
    text = (raw_root / "ActionUnit_Labels" / subject / f"{subject}_au{au}.txt").read_text()
    return {int(f) - 1: int(v) for f, v in (line.split(",") for line in text.split())}


def test_cli_disfa_from_bp4d_with_ablation_and_intensity_cut(cache, tmp_path, capsys):
    from mgrr_pyg.train.cli import main

    bp4d = tmp_path / "bp4d-fold1"
    main(TINY + ["--cache-dir", str(cache), "--output", str(bp4d)], dataset="BP4D",
         prog="train_bp4d.py")
    capsys.readouterr()
    disfa = tmp_path / "disfa"
    main(TINY + ["--cache-dir", str(cache), "--output", str(disfa), "--init-from",
                 str(tmp_path / "bp4d-fold{fold}" / "last.pt"),  # {fold}: this run's fold, 1
                 "--ablation", "setting2", "--set", "d_v=16",
                 "--init-adjacency", "checkpoint", "--intensity-cut", "3"],
         dataset="DISFA", prog="train_disfa.py")
    printed = capsys.readouterr().out
    assert "started fresh" in printed and "architecture differs" in printed
    assert "init_adjacency='checkpoint'" in printed
    saved = json.loads((disfa / "results.json").read_text())
    assert saved["config"]["init_adjacency"] == "checkpoint"
    assert saved["config"]["intensity_cut"] == 3 and saved["info"]["intensity_cut"] == 3
    transfer = saved["info"]["transfer"]
    assert transfer["adjacency"] == "checkpoint" and transfer["source"]["fold"] == 1
    assert transfer["source"]["path"] == str(bp4d / "last.pt")
    assert saved["config"]["init_from"] == str(bp4d / "last.pt")
    assert "region_features.weight" in transfer["started_fresh"]  # d_v 32 -> 16
    assert any(d.startswith("d_v:") for d in transfer["architecture_differences"])

    # The run's labels are the raw intensities cut at >= 3, in a folder of that cut only.
    prepared = [p for p in (cache / "prepared").iterdir() if p.name.startswith("DISFA")]
    assert [p.name.endswith("-cut3") for p in prepared] == [True]
    manifest = json.loads((prepared[0] / "prepare.json").read_text())
    raw_root = cache / "synthetic" / prepared[0].name[:-len("-cut3")]
    paths = (prepared[0] / "DISFA_part1_path.txt").read_text().split()
    occur = np.loadtxt(prepared[0] / "DISFA_part1_AUoccur.txt", dtype=int, ndmin=2)
    assert manifest["threshold"] == 3 and len(paths) == len(occur) > 0
    cut2_differs = False
    for path, row in zip(paths, occur):
        subject, frame = path.split("/")[-2], int(path.split("/")[-1].split(".")[0])
        for au, label in zip(DISFA_AUS, row):
            value = _raw_intensities(raw_root, subject, au)[frame]
            assert label == int(value >= 3), (path, au, value)
            cut2_differs |= value == 2
    assert cut2_differs, "no intensity of 2 in the test part: the cut would not show"


def test_prepared_data_of_another_cut_is_never_reused(cache, tmp_path):
    from mgrr_pyg.train.data_sources import prepared_root

    config = TrainConfig(dataset="DISFA", synthetic_preset="tiny", cache_dir=str(cache),
                         workers=0, progress=False)
    root2, _ = prepared_root(config, log=lambda *a: None)
    assert json.loads((root2 / "prepare.json").read_text())["threshold"] == 2
    # the same lists given as prepared data to a run at cut 3: refused, saying what to do
    with pytest.raises(ValueError, match=r"binarised at DISFA intensity >= 2 .*--intensity-cut 3"
                                         r".*--threshold 3"):
        prepared_root(config.replace(data_root=str(root2), intensity_cut=3), log=lambda *a: None)
    # an explicit --prepared-root holding cut 2, asked for cut 3: refused by the preparation
    with pytest.raises(ValueError, match="threshold: 2 there, 3 requested"):
        prepared_root(config.replace(prepared_root=str(root2), intensity_cut=3), log=lambda *a: None)
    # BP4D has no intensities to cut
    with pytest.raises(ValueError, match="only DISFA's labels are intensities"):
        TrainConfig(dataset="BP4D", intensity_cut=3)


def test_a_wrong_init_from_file_fails_before_any_data_is_made(tmp_path):
    from mgrr_pyg.train.pipeline import run_training

    other = nn.Sequential(nn.Linear(4, 3))
    path = save_checkpoint(tmp_path / "other.pt", model=other, epoch=1,
                           metadata=build_metadata(BP4D_AUS, "BP4D", 1))
    cache = tmp_path / "cache"
    config = TrainConfig(dataset="DISFA", preset="tiny", synthetic_preset="tiny",
                         cache_dir=str(cache), init_from=str(path), output=str(tmp_path / "run"),
                         device="cpu", workers=0, progress=False, tensorboard=False)
    with pytest.raises(ValueError, match=r"other\.pt: the checkpoint shares no weights.*last\.pt"):
        run_training(config, log=lambda *a: None)
    assert not cache.exists()  # nothing generated or prepared


def test_an_older_config_reads_back_as_what_it_ran():
    """Before --init-adjacency, --init-from copied the checkpoint's A: a stored config of
    that version completes to 'checkpoint', one without --init-from to the default."""
    from mgrr_pyg.train.config import RESUME_FREE_KEYS, TrainConfig

    old = {k: v for k, v in TrainConfig().to_dict().items() if k != "init_adjacency"}
    assert TrainConfig.complete_dict(old)["init_adjacency"] == "prior"
    with_init = {**old, "init_from": "bp4d/last.pt"}
    assert TrainConfig.complete_dict(with_init)["init_adjacency"] == "checkpoint"
    # it acts only on a fresh start (like --init-from), so a resume never stops on it
    assert "init_adjacency" in RESUME_FREE_KEYS
