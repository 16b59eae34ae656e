"""Results tables are generated from results.json files (README, docs/results, the
runners' summaries), every run records what it ran on, results.md states the optimiser
that ran, and the README names the files a run writes."""
import json
import re
import subprocess
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import torch

from mgrr_pyg.train.config import TrainConfig
from mgrr_pyg.train.metrics import evaluate_predictions, label_only_baselines
from mgrr_pyg.train.outputs import RunResult, results_markdown
from mgrr_pyg.train.report import (
    BLOCK_END,
    ReportError,
    describe_schedule,
    marker,
    regenerate,
    render_block,
    targets,
    update,
)

REPO = Path(__file__).resolve().parents[2]
AUS = (1, 2, 4)
QUICK = dict(preset="tiny", epochs=8, batch_size=8, optimizer="adamw", lr=1e-3, max_test_frames=600)


def fake_result(draw=0, fold=1, **config) -> RunResult:
    """A RunResult from random probabilities (seeded by ``draw``), as run_training would make it."""
    rng = np.random.default_rng(draw)
    labels = (rng.random((40, 3)) < 0.4).astype(int)
    labels[0], labels[1] = 1, 0
    metrics = evaluate_predictions(rng.random((40, 3)), labels, aus=AUS)
    baselines = label_only_baselines(labels, labels, AUS, seed=0)
    info = {"preset": config.get("preset", "mgrr_bp4d"), "parameters": 310_000, "train_frames": 1944,
            "test_frames": 600, "source": "synthetic", "overrides": {}}
    landmarks = {"mean_error": 0.05, "failure_rate": 0.002, "frames": 40}
    return RunResult(None, TrainConfig(fold=fold, **config), metrics, baselines, landmarks, 8,
                     "last epoch", [], 357.0, f"fold {fold}", "", info)


def write(path: Path, result: RunResult) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result.to_dict()))
    return path


def cells(text: str, row_start: str) -> list[str]:
    row = next(line for line in text.splitlines() if line.startswith(row_start))
    return [c.strip().strip("*") for c in row.split("|")[1:-1]]


# -- the committed tables -----------------------------------------------------------------
def test_committed_tables_are_what_their_results_files_give():
    """README.md and docs/results/*.md: regenerating every block reproduces the committed
    text exactly (fails when a results file or a generated table is edited by hand)."""
    files = targets(REPO)
    assert REPO / "README.md" in files
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "<!-- results: run " in readme, "the README's default-run table is not generated"
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert regenerate(text, path.parent, str(path)) == text, \
            f"{path}: run python -m mgrr_pyg.train.report"


def test_every_committed_results_file_is_used_by_a_table():
    used = set()
    for path in targets(REPO):
        for match in re.finditer(r"<!-- results: [a-z-]+ ([^>]*?) *-->", path.read_text(encoding="utf-8")):
            used |= {(path.parent / name).resolve() for name in match.group(1).split()}
    for results in (REPO / "docs" / "results").glob("*.json"):
        assert results.resolve() in used, f"{results} is committed but no table is made from it"


# -- generation ---------------------------------------------------------------------------
def test_run_table_holds_the_files_numbers_and_goes_stale_when_either_is_edited(tmp_path):
    result = fake_result(preset="tiny", optimizer="adamw", lr=1e-3)
    write(tmp_path / "results" / "run.json", result)
    page = tmp_path / "page.md"
    page.write_text("# Results\n\n" + marker("run", ["results/run.json"]) + "\n" + BLOCK_END + "\n\nafter\n")
    assert update([page]) == [page]
    text = page.read_text()
    assert text.startswith("# Results\n\n<!-- results: run results/run.json -->\n")
    assert text.endswith("\n\nafter\n")
    model = cells(text, "| MGRR-Net")
    assert model[0] == "MGRR-Net (`tiny`)"
    assert model[1:4] == [f"{100 * v:.1f}" for v in result.metrics.f1]
    assert model[4] == f"{100 * np.mean(result.metrics.f1):.1f}"
    best = max(result.baselines.values(), key=lambda m: np.nanmean(m.f1))
    assert f"**{100 * (np.mean(result.metrics.f1) - np.nanmean(best.f1)):+.1f} F1 points**" in text
    assert "AdamW lr 0.001" in text and "- Time: 5 min 57 s in all" in text
    assert "[run.json](results/run.json)" in text
    assert update([page], check=True) == []  # idempotent

    edited = text.replace(f"| {model[1]} |", f"| {float(model[1]) + 1:.1f} |", 1)
    page.write_text(edited)
    assert update([page], check=True) == [page] and page.read_text() == edited  # --check writes nothing
    update([page])
    assert page.read_text() == text

    data = json.loads((tmp_path / "results" / "run.json").read_text())
    data["metrics"]["f1"][0] = 0.123
    (tmp_path / "results" / "run.json").write_text(json.dumps(data))
    assert update([page], check=True) == [page]


def test_fold_summary_means_are_the_means_over_folds(tmp_path):
    results = {f: fake_result(draw=f, fold=f, preset="tiny") for f in (3, 1, 2)}
    names = [f"fold{f}.json" for f in results]
    for f, result in results.items():
        write(tmp_path / f"fold{f}.json", result)
    block = render_block("folds", names, tmp_path)
    f1 = cells(block, "| F1, MGRR-Net")
    expected = [100 * np.mean(results[f].metrics.f1) for f in (1, 2, 3)]  # sorted by fold
    assert f1[1:4] == [f"{v:.1f}" for v in expected]
    assert f1[4] == f"{np.mean(expected):.1f}"
    assert cells(block, "| mean over AUs")[1:4] == ["fold 1", "fold 2", "fold 3"]
    tables = render_block("fold-tables", names, tmp_path)
    assert cells(tables.split("**Accuracy")[0], "| Mean")[1] == \
        f"{100 * np.mean([results[f].metrics.f1[0] for f in (1, 2, 3)]):.1f}"
    with pytest.raises(ReportError, match="fold1.json and .*fold1.json are both fold 1"):
        render_block("folds", ["fold1.json", "fold1.json"], tmp_path)


def test_bad_markers_and_files_are_errors_naming_the_place(tmp_path):
    page = tmp_path / "page.md"
    with pytest.raises(ReportError, match=r"page.md, line 3: .*missing.json .*does not exist"):
        regenerate("a\n\n<!-- results: run missing.json -->\n<!-- /results -->\n", tmp_path, str(page))
    with pytest.raises(ReportError, match=r"line 1: block .* has no <!-- /results -->"):
        regenerate("<!-- results: run a.json -->\ntext\n", tmp_path, str(page))
    with pytest.raises(ReportError, match="unknown table kind 'runs'"):
        regenerate("<!-- results: runs a.json -->\n<!-- /results -->", tmp_path, str(page))
    quoted = "Blocks open with `<!-- results: run x.json -->` alone on a line.\n"
    assert regenerate(quoted, tmp_path, str(page)) == quoted  # prose may quote a marker
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ReportError, match="bad.json: not readable as JSON"):
        regenerate("<!-- results: run bad.json -->\n<!-- /results -->", tmp_path, str(page))
    (tmp_path / "other.json").write_text(json.dumps({"metrics": {}}))
    with pytest.raises(ReportError, match=r"other.json: missing \['config'"):
        regenerate("<!-- results: run other.json -->\n<!-- /results -->", tmp_path, str(page))
    (tmp_path / "future.json").write_text(json.dumps({"format": "mgrr-run-results/9"}))
    with pytest.raises(ReportError, match="expected format 'mgrr-run-results/1', found 'mgrr-run-results/9'"):
        regenerate("<!-- results: run future.json -->\n<!-- /results -->", tmp_path, str(page))


# -- what a run records -------------------------------------------------------------------
def test_schedule_is_the_optimiser_and_steps_that_ran():
    quick = describe_schedule(TrainConfig(**QUICK).to_dict())
    assert quick.startswith("AdamW lr 0.001, weight decay 0.0005, lr x0.5 every 2 epochs, 8 epochs, batch 8")
    assert "SGD" not in quick and "omentum" not in quick
    paper = describe_schedule(TrainConfig().to_dict())
    assert paper.startswith("SGD lr 0.01, Nesterov momentum 0.9, weight decay 0.0005, lr x0.5 every 2 "
                            "epochs, 15 epochs, batch 8, lambda 0.5")
    plain = describe_schedule(TrainConfig(nesterov=False, momentum=0.5, lr_gamma=1.0).to_dict())
    assert plain.startswith("SGD lr 0.01, momentum 0.5, weight decay 0.0005, constant lr")
    assert "Nesterov" not in plain
    markdown = results_markdown(fake_result(**QUICK))
    schedule = next(line for line in markdown.splitlines() if line.startswith("- Schedule:"))
    assert "AdamW lr 0.001" in schedule and "SGD" not in schedule and "Nesterov" not in schedule


def test_results_record_versions_threads_machine_commit_and_command():
    before = torch.get_num_threads()
    threads = 1 if before != 1 else 2  # not the default, so a record of the default would fail
    torch.set_num_threads(threads)
    try:
        record = json.loads(json.dumps(fake_result().to_dict()))
    finally:
        torch.set_num_threads(before)
    env = record["environment"]
    assert env["threads"]["intra_op_threads"] == threads
    assert env["versions"]["torch"] == torch.__version__
    assert env["versions"]["numpy"] == np.__version__
    import PIL
    import sklearn
    import torch_geometric

    assert env["versions"]["Pillow"] == PIL.__version__
    assert env["versions"]["torch-geometric"] == torch_geometric.__version__
    assert env["versions"]["scikit-learn"] == sklearn.__version__
    assert env["versions"]["scipy"] == metadata.version("scipy")
    assert env["machine"]["logical_cpus"] >= 1 and env["machine"]["platform"]
    # the kernels torch dispatches to decide the rounding: AVX2 and AVX-512 machines differ
    assert env["machine"]["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        head = None
    assert (env["git"] or {}).get("commit") == head
    assert record["data"]["synthetic_set"].startswith("BP4D-default-seed0-")
    assert record["format"] == "mgrr-run-results/1"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from mgrr_pyg.train.cli import main

    out = tmp_path_factory.mktemp("run") / "run"
    argv = ["--synthetic-preset", "tiny", "--cache-dir", str(tmp_path_factory.mktemp("cache")),
            "--preset", "tiny", "--epochs", "1", "--batch-size", "4", "--max-train-frames", "8",
            "--max-test-frames", "6", "--workers", "0", "--device", "cpu", "--no-progress",
            "--no-tensorboard", "--optimizer", "adamw", "--lr", "0.001", "--output", str(out)]
    main(argv, dataset="BP4D", prog="train_bp4d.py")
    return out


def test_the_readme_names_the_files_a_run_writes(tiny_run):
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    promise = re.search(r"writes `runs/BP4D-fold1-tiny-seed0/` \((.*?)\)\.", readme, re.S)
    assert promise, "README: the sentence listing what the default run writes is gone"
    names = []
    for stem in re.findall(r"`([^`]+)`", promise.group(1)):
        first, *others = stem.split("/")
        names += [first] + [Path(first).stem + other for other in others]  # results.md/.csv
    assert "predictions_test.npz" in names and "predictions_test.csv" in names
    for name in names:
        written = sorted(p.name for p in tiny_run.iterdir())
        assert (tiny_run / name).is_file(), f"README promises {name}; the run wrote {written}"


def test_a_real_runs_results_json_and_markdown_say_what_ran(tiny_run):
    record = json.loads((tiny_run / "results.json").read_text())
    assert record["environment"]["threads"]["intra_op_threads"] == torch.get_num_threads()
    assert record["data"]["synthetic_set"].startswith("BP4D-tiny-seed0-")
    assert len(record["data"]["prepared_digest"]) == 40
    markdown = (tiny_run / "results.md").read_text()
    assert "- Schedule: AdamW lr 0.001" in markdown and "Nesterov" not in markdown
    assert "intra-op thread" in markdown and "torch " + torch.__version__ in markdown


def test_compare_puts_runs_side_by_side_with_their_margins(tmp_path):
    a = fake_result(draw=1, preset="mgrr_bp4d", epochs=15)
    b = fake_result(draw=2, preset="mgrr_bp4d_literal", epochs=15, lr_gamma=1.0)
    a.history = [{"epoch": e} for e in range(1, 16)]
    b.history = [{"epoch": e} for e in range(1, 10)]  # stopped after 9 of 15 epochs
    write(tmp_path / "a.json", a)
    write(tmp_path / "b.json", b)
    block = render_block("compare", ["a.json", "b.json"], tmp_path)
    row_a = cells(block, "| MGRR-Net (`mgrr_bp4d`)")
    row_b = cells(block, "| MGRR-Net (`mgrr_bp4d_literal`)")
    assert row_a[2] == "15 of 15" and row_b[2] == "9 of 15"
    for result, row in ((a, row_a), (b, row_b)):
        best = max(result.baselines.values(), key=lambda m: np.nanmean(m.f1))
        f1, base = 100 * np.nanmean(result.metrics.f1), 100 * np.nanmean(best.f1)
        assert row[4] == f"{f1:.1f}"
        assert row[6] == f"{100 * np.nanmean(result.metrics.auc):.1f}"
        assert row[8].startswith(f"{base:.1f} (")
        assert float(row[9]) == pytest.approx(f1 - base, abs=0.051)
    assert "x0.5 every 2 epochs" in row_a[1] and "x0.5" not in row_b[1]


def test_curves_table_lines_up_epochs_and_leaves_unreached_ones_blank(tmp_path):
    from mgrr_pyg.train.curve import CURVE_FORMAT

    def curve(points, f1, auc):
        return {"format": CURVE_FORMAT, "source": "checkpoints", "frames": 300, "dataset": "BP4D",
                "fold": 1, "preset": "mgrr_bp4d", "points": points,
                "best_baseline": {"name": "all positive", "f1": f1, "accuracy": 0.3, "auc": auc}}

    (tmp_path / "a.curve.json").write_text(json.dumps(curve(
        [{"epoch": 1, "curve_f1": 0.233, "curve_auc": 0.5415}, {"epoch": 2, "curve_f1": 0.31, "curve_auc": 0.6}],
        0.4813, 0.5)))
    (tmp_path / "b.curve.json").write_text(json.dumps(curve(
        [{"epoch": 1, "curve_f1": 0.1, "curve_auc": 0.52}], 0.4813, 0.5)))
    block = render_block("curves", ["a.curve.json", "b.curve.json"], tmp_path)
    assert cells(block, "| epoch") == ["epoch", "a F1", "a AUC", "b F1", "b AUC"]
    assert cells(block, "| 1 |") == ["1", "23.3", "54.1", "10.0", "52.0"]
    assert cells(block, "| 2 |") == ["2", "31.0", "60.0", "", ""]
    assert cells(block, "| label-only") == ["label-only baseline", "48.1", "50.0", "48.1", "50.0"]
    (tmp_path / "bad.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ReportError, match="bad.json: expected format"):
        render_block("curves", ["bad.json"], tmp_path)
