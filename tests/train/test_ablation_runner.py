"""The ablation study as an instrument: runs are planned per dataset x setting x seed,
finished ones are skipped, interrupted ones resume, other budgets are refused, a failed
run does not stop the others, and the report pairs seeds, orders rows as Table 6 / 7
and regenerates from the runs' files. Runs here are fake (a runner that writes the
files a real run writes), except one tiny real run end to end."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mgrr_pyg.model.presets import ablation_overrides
from mgrr_pyg.train.ablation import (
    BudgetMismatchError,
    SETTING_ORDER,
    plan_study,
    publish_study,
    run_study,
    summarise,
)
from mgrr_pyg.train.config import TrainConfig
from mgrr_pyg.train.metrics import evaluate_predictions, label_only_baselines, save_predictions
from mgrr_pyg.train.report import ReportError, load_run, regenerate, render_block, update

REPO = Path(__file__).resolve().parents[2]
SUBJECTS = ("SN001", "SN002", "SN009")  # DISFA part 1: fold 1's test subjects
FRAMES = 12  # per subject
AUS = (1, 2, 4, 6, 9, 12, 25, 26)
BUDGET = dict(dataset="DISFA", preset="tiny", epochs=2, synthetic_preset="tiny", max_test_frames=36,
              optimizer="adamw", lr=1e-3)

_rng = np.random.default_rng(7)
LABELS = (_rng.random((len(SUBJECTS) * FRAMES, len(AUS))) < 0.35).astype(np.int64)
FRAME_IDS = [f"DISFA/{s}/{f}.png" for s in SUBJECTS for f in range(FRAMES)]
#: How good each fake setting is (0: chance, 1: right on every frame); seed noise on top.
QUALITY = {"setting1": 0.15, "setting2": 0.3, "full": 0.45, "k1": 0.4, "k3": 0.35, "setting2_random": 0.3}


def fake_probs(setting: str, seed: int) -> np.ndarray:
    """Probabilities of a fake run: the seed decides the noise (shared by every setting of
    that seed), the setting how far the probabilities lean to the labels."""
    noise = np.random.default_rng(100 + seed).random(LABELS.shape)
    quality = QUALITY.get(setting, 0.3)
    return np.clip((1 - quality) * noise + quality * LABELS, 0, 1)


def write_fake_run(run_dir: Path, config: dict, probs: np.ndarray, seconds: float = 60.0) -> None:
    """The files a finished run leaves: config.json, results.json, predictions_test.npz."""
    run_dir.mkdir(parents=True, exist_ok=True)
    metrics = evaluate_predictions(probs, LABELS, AUS)
    baselines = label_only_baselines(LABELS, LABELS, AUS, seed=config["seed"])
    best = max(baselines, key=lambda k: baselines[k].f1_mean)
    overrides = ablation_overrides(config["ablation"]) if config.get("ablation") else {}
    results = {"config": config, "metrics": metrics.to_dict(),
               "baselines": {k: v.to_dict() for k, v in baselines.items()}, "best_baseline": best,
               "seconds": seconds, "selection": "last epoch", "reported_epoch": config["epochs"],
               "info": {"preset": config["preset"], "overrides": overrides, "train_frames": 64,
                        "test_frames": len(FRAME_IDS), "test_subjects": len(SUBJECTS), "source": "synthetic"},
               "data": {"synthetic_set": "DISFA-tiny-seed0-fake"}}
    (run_dir / "config.json").write_text(json.dumps(config))
    save_predictions(run_dir / "predictions_test", probs, LABELS, AUS, FRAME_IDS)
    (run_dir / "results.json").write_text(json.dumps(results))


CALLS: list = []


def fake_runner(config: dict, log_path: str, threads=None) -> dict:
    """A runner that records its call and writes a finished run's files."""
    CALLS.append(config["output"])
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    Path(log_path).write_text("fake run\n")
    if config["ablation"] == "setting3":
        raise RuntimeError("planted failure of setting3")
    write_fake_run(Path(config["output"]), config, fake_probs(config["ablation"], config["seed"]))
    return {"f1_mean": 0.5, "seconds": 1.0}


@pytest.fixture(autouse=True)
def no_calls():
    CALLS.clear()
    yield


@pytest.fixture()
def messages():
    return []


def configs(**changes):
    return {"DISFA": TrainConfig(**{**BUDGET, **changes})}


def study(tmp_path, messages, settings=("full", "setting1"), seeds=(0, 1), jobs=1, reference="full", **changes):
    return run_study(configs(**changes), settings, seeds, tmp_path / "out", jobs=jobs, runner=fake_runner,
                     log=messages.append, reference=reference)


# -- plan, skip, resume, budget -----------------------------------------------------------
def test_plan_names_one_folder_per_dataset_setting_and_seed_and_runs_seed_by_seed(tmp_path):
    # seed-major: a study stopped part way has whole seeds (every setting of seed 0 first)
    both = {"DISFA": TrainConfig(**BUDGET), "BP4D": TrainConfig(**{**BUDGET, "dataset": "BP4D"})}
    runs = plan_study(both, ["k1", "full"], [0, 2], tmp_path)
    assert [r.name for r in runs] == ["DISFA/full-seed0", "DISFA/k1-seed0", "DISFA/full-seed2", "DISFA/k1-seed2",
                                      "BP4D/full-seed0", "BP4D/k1-seed0", "BP4D/full-seed2", "BP4D/k1-seed2"]
    assert runs[3].run_dir == tmp_path / "DISFA" / "k1-seed2"
    assert (runs[3].config.ablation, runs[3].config.seed, runs[3].config.output) == \
        ("k1", 2, str(tmp_path / "DISFA" / "k1-seed2"))
    with pytest.raises(ValueError, match="seeds: expected each seed once"):
        plan_study(both, ["full"], [0, 0], tmp_path)


def test_the_default_study_is_table_6_table_7_and_the_papers_random_start():
    from mgrr_pyg.train.ablation import DEFAULT_SETTINGS

    # k2 is the full model; the full model's random start is not the paper's and runs when asked
    assert DEFAULT_SETTINGS == ("setting1", "setting2", "setting3", "setting4", "setting5",
                                "setting6", "full", "k1", "k3", "setting2_random")


def test_a_finished_run_is_skipped_and_an_interrupted_one_resumes(tmp_path, messages):
    study(tmp_path, messages)
    assert len(CALLS) == 4
    CALLS.clear()
    # an interrupted run: its config and checkpoint are there, no results
    interrupted = tmp_path / "out" / "DISFA" / "setting1-seed1"
    (interrupted / "results.json").unlink()
    (interrupted / "last.pt").write_bytes(b"checkpoint")
    messages.clear()
    study(tmp_path, messages)
    assert CALLS == [str(interrupted)]  # only the interrupted run ran again
    text = "\n".join(messages)
    assert "skipping 3 finished run(s)" in text and "DISFA/full-seed0" in text
    assert f"DISFA/setting1-seed1: resumes from its checkpoint {interrupted / 'last.pt'}" in text
    CALLS.clear()
    study(tmp_path, messages)
    assert CALLS == []


def test_another_budget_is_refused_before_anything_runs(tmp_path, messages):
    study(tmp_path, messages)
    CALLS.clear()
    with pytest.raises(BudgetMismatchError, match=r"budget.json: holds runs of another budget.*\n  epochs: 2 != 3"):
        study(tmp_path, messages, epochs=3)
    assert CALLS == []
    # a run folder with another budget (no budget.json to tell): refused too
    (tmp_path / "out" / "DISFA" / "budget.json").unlink()
    with pytest.raises(BudgetMismatchError, match=r"setting1-seed0/results.json: holds runs of another budget"):
        study(tmp_path, messages, epochs=3)
    assert CALLS == []
    # what only changes where or how fast a run goes is not the budget
    (tmp_path / "out" / "DISFA" / "budget.json").unlink()
    study(tmp_path, messages, workers=0, checkpoint_minutes=1.0)
    assert CALLS == []
    # a budget.json of an older version, without a setting added since: read as its default
    path = tmp_path / "out" / "DISFA" / "budget.json"
    record = json.loads(path.read_text())
    assert record["budget"].pop("lambda_align") == 0.5
    path.write_text(json.dumps(record))
    study(tmp_path, messages)
    assert CALLS == []


def test_a_failed_run_is_reported_with_its_log_and_the_others_go_on(tmp_path, messages):
    result = study(tmp_path, messages, settings=("setting3", "full"), seeds=(0,))
    assert [(o.run.setting, o.status) for o in result.outcomes] == [("setting3", "failed"), ("full", "done")]
    text = "\n".join(messages)
    log = tmp_path / "out" / "DISFA" / "setting3-seed0" / "train.log"
    assert "1 run(s) FAILED" in text and f"log: {log}" in text and "planted failure of setting3" in text
    assert "Runs missing" not in text  # the report covers what finished: full only
    assert (tmp_path / "out" / "DISFA" / "ablation.json").exists()


def test_parallel_jobs_run_in_spawned_processes(tmp_path, messages):
    result = study(tmp_path, messages, settings=("full", "k1"), seeds=(0,), jobs=2)
    assert sorted(o.status for o in result.outcomes) == ["done", "done"]
    assert CALLS == []  # the runner ran in the worker processes, not here
    assert all((tmp_path / "out" / "DISFA" / f"{s}-seed0" / "results.json").exists() for s in ("full", "k1"))


# -- the report ---------------------------------------------------------------------------
def records_of(folder: Path, names):
    return [load_run(folder / name, name) for name in names]


def write_study(folder: Path, settings, seeds, probs=fake_probs):
    names = []
    for setting in settings:
        for seed in seeds:
            config = TrainConfig(**BUDGET).replace(ablation=setting, seed=seed,
                                                   output=str(folder / f"{setting}-seed{seed}")).to_dict()
            write_fake_run(folder / f"{setting}-seed{seed}", config, probs(setting, seed))
            names.append(f"{setting}-seed{seed}/results.json")
    return names


def test_seeds_are_paired_across_settings(tmp_path):
    # setting2's runs are the full model's runs of the same seed, exactly; the seeds differ.
    # Paired by seed, every difference is 0 and so is the interval; pairing seed 0 with
    # seed 1 would compare different predictions.
    names = write_study(tmp_path, ["full", "setting2"], [0, 1, 2],
                        probs=lambda setting, seed: fake_probs("full", seed))
    assert not np.allclose(fake_probs("full", 0), fake_probs("full", 1))
    row = next(r for r in summarise(records_of(tmp_path, names))["rows"] if r["setting"] == "setting2")
    versus = row["vs_reference"]
    assert versus["per_pair"] == [0.0, 0.0, 0.0] and versus["pair_labels"] == ["0", "1", "2"]
    assert (versus["difference"], versus["low"], versus["high"]) == (0.0, 0.0, 0.0)


def test_a_better_setting_has_an_interval_above_zero_and_the_numbers_are_the_runs(tmp_path):
    names = write_study(tmp_path, ["full", "setting1"], [0, 1, 2])
    summary = summarise(records_of(tmp_path, names))
    rows = {r["setting"]: r for r in summary["rows"]}
    f1 = {s: [100 * evaluate_predictions(fake_probs("setting1", s), LABELS, AUS).f1_mean] for s in (0, 1, 2)}
    assert rows["setting1"]["f1_mean"] == pytest.approx(np.mean([v[0] for v in f1.values()]))
    assert rows["setting1"]["f1_std"] == pytest.approx(np.std([v[0] for v in f1.values()], ddof=1))
    auc = [100 * evaluate_predictions(fake_probs("setting1", s), LABELS, AUS).auc_mean for s in (0, 1, 2)]
    assert (rows["setting1"]["auc_mean"], rows["setting1"]["auc_std"]) == \
        pytest.approx((np.mean(auc), np.std(auc, ddof=1)))
    versus = rows["setting1"]["vs_reference"]
    assert versus["high"] < 0  # setting1 (quality 0.15) is worse than full (0.45) on these frames
    # the point estimate is the mean of the per-seed differences of the runs' own F1
    full = [evaluate_predictions(fake_probs("full", s), LABELS, AUS).f1_mean for s in (0, 1, 2)]
    assert versus["difference"] == pytest.approx(np.mean([f1[s][0] / 100 - full[s] for s in (0, 1, 2)]), abs=1e-6)
    assert rows["full"]["vs_reference"] is None
    pairs = summary["full_seed_pairs"]
    assert [p["seeds"] for p in pairs] == ["0-1", "0-2", "1-2"]
    assert pairs[0]["difference"] == pytest.approx(full[0] - full[1], abs=1e-6)
    assert summary["full_seed_mean_abs_difference"] == pytest.approx(
        100 * np.mean([abs(full[0] - full[1]), abs(full[0] - full[2]), abs(full[1] - full[2])]), abs=1e-4)
    assert summary["resolution"] == max(summary["typical_half_width"], summary["seed_noise_half_width"])
    assert summary["reference_beats_baseline_every_seed"] in (True, False)
    assert set(summary["baseline"]) == {"0", "1", "2"}


def mean_f1(probs: np.ndarray) -> float:
    """Mean over AUs of F1 at threshold 0.5, typed here: 2 TP / (2 TP + FP + FN) per AU."""
    predicted = probs >= 0.5
    positive = LABELS == 1
    tp = (predicted & positive).sum(axis=0)
    fp = (predicted & ~positive).sum(axis=0)
    fn = (~predicted & positive).sum(axis=0)
    return float(np.mean(2 * tp / (2 * tp + fp + fn)))


def test_another_reference_compares_every_setting_with_it(tmp_path):
    # the region graph's question: setting2 (D_G only) against setting1 (no relational reasoning)
    names = write_study(tmp_path, ["setting1", "setting2", "full"], [0, 1, 2])
    f1 = {(setting, seed): mean_f1(fake_probs(setting, seed))
          for setting in ("setting1", "setting2", "full") for seed in (0, 1, 2)}
    assert all(f1["setting2", s] > f1["setting1", s] for s in (0, 1, 2))  # what the test stands on
    summary = summarise(records_of(tmp_path, names), reference="setting1")
    rows = {r["setting"]: r for r in summary["rows"]}
    assert summary["reference"] == "setting1"
    assert rows["setting1"]["vs_reference"] is None
    versus = rows["setting2"]["vs_reference"]
    assert versus["low"] > 0 and versus["pair_labels"] == ["0", "1", "2"]
    assert versus["difference"] == pytest.approx(np.mean([f1["setting2", s] - f1["setting1", s] for s in (0, 1, 2)]),
                                                 abs=1e-9)
    # the full model is compared with setting1 too, not the other way round
    assert rows["full"]["vs_reference"]["difference"] == pytest.approx(
        np.mean([f1["full", s] - f1["setting1", s] for s in (0, 1, 2)]), abs=1e-9)
    # the seed noise and the verdict are the reference's
    assert summary["full_seed_pairs"][0]["difference"] == pytest.approx(f1["setting1", 0] - f1["setting1", 1], abs=1e-9)
    best = {}
    for s in (0, 1, 2):
        results = json.loads((tmp_path / f"setting1-seed{s}" / "results.json").read_text())
        best[str(s)] = results["baselines"][results["best_baseline"]]["f1_mean"]
    assert summary["reference_margin_over_baseline"] == pytest.approx(
        {str(s): 100 * (f1["setting1", s] - best[str(s)]) for s in (0, 1, 2)}, abs=1e-6)


def test_report_only_writes_another_references_report_beside_the_default(tmp_path, messages):
    study(tmp_path, messages, settings=("full", "setting1", "setting2"), seeds=(0, 1))
    out = tmp_path / "out"
    default_pages = {p: p.read_bytes() for p in (out / "ablation.md", out / "DISFA" / "ablation.md",
                                                  out / "DISFA" / "ablation.json")}
    CALLS.clear()
    run_study(configs(), ("full", "setting1", "setting2"), (0, 1), out, jobs=1, runner=fake_runner,
              report_only=True, log=messages.append, reference="setting1")
    assert CALLS == []  # nothing trained
    assert {p: p.read_bytes() for p in default_pages} == default_pages  # the default report stays as it was
    assert update(list(default_pages)[:2], check=True) == []
    page = (out / "DISFA" / "ablation-vs-setting1.md").read_text()
    # a results block whose kind names the reference: python -m mgrr_pyg.train.report regenerates it
    assert "<!-- results: ablation-vs-setting1 setting1-seed0/results.json " in page
    assert "`python -m mgrr_pyg.train.report ablation-vs-setting1.md`" in page
    vs_pages = [out / "ablation-vs-setting1.md", out / "DISFA" / "ablation-vs-setting1.md"]
    assert update(vs_pages, check=True) == []
    stale = page.replace("| **setting1** |", "| **setting1 (edited)** |")
    (out / "DISFA" / "ablation-vs-setting1.md").write_text(stale)
    assert update(vs_pages) == [out / "DISFA" / "ablation-vs-setting1.md"]  # regenerated from the runs ...
    assert (out / "DISFA" / "ablation-vs-setting1.md").read_text() == page  # ... as the runner wrote it
    assert "| ΔF1 vs setting1 [95 % CI] |" in page and "the paired difference to `setting1`" in page
    reference_row = next(line for line in page.splitlines() if line.startswith("| **setting1** |"))
    assert "| reference |" in reference_row
    assert next(line for line in page.splitlines() if line.startswith("| full |"))
    assert "Two seeds of `setting1` differ by" in page
    verdict = next(line for line in page.splitlines() if "minus the best label-only baseline" in line)
    assert verdict.startswith("`setting1` minus the best label-only baseline, per seed: ")
    assert "; `setting1` beats it on every seed." in verdict or "; `setting1` does **not** beat it" in verdict
    assert json.loads((out / "DISFA" / "ablation-vs-setting1.json").read_text())["reference"] == "setting1"
    table = page.split(" -->\n", 2)[2]  # after the marker (its paths differ) and the generated note
    assert table in (out / "ablation-vs-setting1.md").read_text()
    assert "written: " + str(out / "ablation-vs-setting1.md") in "\n".join(messages)


def test_a_results_block_kind_names_its_reference_setting(tmp_path):
    folder = tmp_path / "runs"
    names = write_study(folder, ["full", "setting1", "setting2"], [0, 1])
    text = render_block("ablation-vs-setting1", names, folder)
    assert text.startswith("<!-- results: ablation-vs-setting1 " + " ".join(names) + " -->\n")
    assert "| ΔF1 vs setting1 [95 % CI] |" in text and "| ΔF1 vs full [95 % CI] |" not in text
    assert "| **setting1** |" in text and "| **full** |" not in text
    assert "| ΔF1 vs full [95 % CI] |" in render_block("ablation", names, folder)
    assert regenerate(text, folder) == text
    with pytest.raises(ReportError, match=r"line 1: unknown table kind 'ablation-vs-nosuch'; expected one of "
                                          r"\[.*'ablation'.*\] or ablation-vs-<setting>"):
        regenerate(text.replace("ablation-vs-setting1", "ablation-vs-nosuch", 1), folder)
    with pytest.raises(ReportError, match=r"line 1: kind 'ablation-vs-k3': reference: expected one of the settings of these runs "
                                          r"\(.*\), found 'k3'"):
        regenerate(text.replace("ablation-vs-setting1", "ablation-vs-k3", 1), folder)


def test_publish_copies_what_the_report_needs_and_writes_a_regenerable_report(tmp_path, messages):
    from mgrr_pyg.train.metrics import load_predictions

    study(tmp_path, messages, settings=("full", "setting1", "setting2"), seeds=(0, 1))
    out, pub = tmp_path / "out", tmp_path / "published"
    source = out / "DISFA" / "setting2-seed1"
    landmarks = np.random.default_rng(0).normal(size=(len(FRAME_IDS), 49, 2))  # a real run has them
    subjects = [f.split("/")[1] for f in FRAME_IDS]
    save_predictions(source / "predictions_test", fake_probs("setting2", 1), LABELS, AUS, FRAME_IDS,
                     landmarks_pred=landmarks, landmarks_true=landmarks, subjects=subjects)
    CALLS.clear()
    run_study(configs(), ("full", "setting1", "setting2"), (0, 1), out, jobs=1, runner=fake_runner,
              report_only=True, log=messages.append, reference="setting1", publish=pub)
    assert CALLS == []
    for setting in ("full", "setting1", "setting2"):
        for seed in (0, 1):
            run = f"{setting}-seed{seed}"
            assert (pub / "DISFA" / run / "results.json").read_bytes() == \
                (out / "DISFA" / run / "results.json").read_bytes()
            kept, whole = (load_predictions(d / "DISFA" / run / "predictions_test.npz") for d in (pub, out))
            assert set(kept) == {"probs", "labels", "aus", "frame_ids", "threshold"} | \
                ({"subjects"} if run == "setting2-seed1" else set())
            for key in kept:
                assert np.array_equal(kept[key], whole[key]), (run, key)
    assert "landmarks_pred" in load_predictions(source / "predictions_test.npz")  # the study's own file stays
    assert sorted(p.name for p in (pub / "DISFA" / "setting2-seed1").iterdir()) == \
        ["predictions_test.npz", "results.json"]  # nothing else: no checkpoint, no logs
    # the published pages are results blocks over the copies and give the study's own tables
    pages = [pub / "ablation-vs-setting1.md", pub / "DISFA" / "ablation-vs-setting1.md"]
    assert update(pages, check=True) == []
    mine = (pub / "DISFA" / "ablation-vs-setting1.md").read_text()
    theirs = (out / "DISFA" / "ablation-vs-setting1.md").read_text()
    assert mine.split(" -->\n", 2)[2] == theirs.split(" -->\n", 2)[2]
    assert json.loads((pub / "DISFA" / "ablation-vs-setting1.json").read_text()) == \
        json.loads((out / "DISFA" / "ablation-vs-setting1.json").read_text())
    # refused before anything: publishing into the study's own folder, or a study with nothing finished
    before = sorted(p for p in out.rglob("*"))
    with pytest.raises(ValueError, match=r"publish: expected another folder than the study's output"):
        run_study(configs(), ("full",), (0,), out, jobs=1, runner=fake_runner, report_only=True,
                  log=messages.append, publish=out)
    assert sorted(p for p in out.rglob("*")) == before and CALLS == []
    with pytest.raises(ValueError, match=r"publish: no finished run in .*empty"):
        publish_study(tmp_path / "empty", tmp_path / "pub2", ["DISFA"],
                      plan_study({"DISFA": TrainConfig(**BUDGET)}, ["full"], [0], tmp_path / "empty"))
    assert not (tmp_path / "pub2").exists()


def test_per_au_f1_and_the_weak_aus_of_a_tied_set_are_reported(tmp_path):
    from sklearn.metrics import f1_score

    folder = tmp_path / "runs"
    names = write_study(folder, ["full", "setting1", "setting2"], [0, 1, 2])
    ties = [[6, 12], [26, 25]]  # as the tied preset's adjacency files record them
    for name in names:
        (folder / name).parent.joinpath("adjacency_agreement.json").write_text(
            json.dumps({"ties": ties, "layers": [], "truth_available": True}))

    def f1(setting, seed, au):  # typed here: frame F1 of one AU column at threshold 0.5
        column = AUS.index(au)
        return 100 * f1_score(LABELS[:, column], fake_probs(setting, seed)[:, column] >= 0.5, zero_division=0)

    summary = summarise(records_of(folder, names), reference="setting1")
    assert summary["weak_aus"] == {"6": 12, "26": 25}
    rows = {row["setting"]: row for row in summary["rows"]}
    for setting in ("full", "setting1", "setting2"):
        for au in AUS:
            assert rows[setting]["f1_per_au"][str(au)] == pytest.approx(
                np.mean([f1(setting, s, au) for s in (0, 1, 2)]), abs=1e-6)
        weak = [np.mean([f1(setting, s, 6), f1(setting, s, 26)]) for s in (0, 1, 2)]
        assert rows[setting]["weak_f1_mean"] == pytest.approx(np.mean(weak), abs=1e-6)
        assert rows[setting]["weak_f1_std"] == pytest.approx(np.std(weak, ddof=1), abs=1e-6)
    for setting in ("full", "setting2"):
        versus = rows[setting]["weak_vs_reference"]
        expected = np.mean([np.mean([f1(setting, s, au) - f1("setting1", s, au) for au in (6, 26)])
                            for s in (0, 1, 2)])
        assert 100 * versus["difference"] == pytest.approx(expected, abs=1e-6)
        assert versus["low"] <= versus["difference"] <= versus["high"]
        assert versus["difference"] != pytest.approx(rows[setting]["vs_reference"]["difference"], abs=1e-4)
    assert rows["setting1"]["weak_vs_reference"] is None
    text = render_block("ablation-vs-setting1", names, folder)
    assert "| setting | AU1 | AU2 | AU4 | AU6 (weak) | AU9 | AU12 | AU25 | AU26 (weak) |" in text
    assert "tied to a strong AU through the expressions: AU6 with AU12, AU26 with AU25)" in text
    weak_row = next(line for line in text.splitlines() if line.startswith("| setting2 |") and line.count("|") == 5)
    assert f"{rows['setting2']['weak_f1_mean']:.1f} ± {rows['setting2']['weak_f1_std']:.1f}" in weak_row
    # data without weak AUs (no ties recorded): the per-AU table only
    plain_names = write_study(tmp_path / "plain", ["full", "setting1"], [0])
    plain = summarise(records_of(tmp_path / "plain", plain_names))
    assert plain["weak_aus"] == {} and "weak_f1_mean" not in plain["rows"][0]
    text = render_block("ablation", plain_names, tmp_path / "plain")
    assert "| setting | AU1 | AU2 | AU4 | AU6 | AU9 | AU12 | AU25 | AU26 |" in text and "weak" not in text


def test_a_reference_without_runs_is_refused(tmp_path, messages):
    names = write_study(tmp_path / "runs", ["full", "setting1"], [0])
    with pytest.raises(ValueError, match=r"reference: expected one of the settings of these runs "
                                         r"\(setting1, full\), found 'k3'"):
        summarise(records_of(tmp_path / "runs", names), reference="k3")
    with pytest.raises(ValueError, match=r"reference: expected one of the study's settings "
                                         r"\(full, setting1\), found 'k3'"):
        study(tmp_path, messages, reference="k3")
    assert CALLS == [] and not (tmp_path / "out").exists()  # refused before anything ran or was written
    # the default may be absent, as before: a table of other settings has no intervals
    names = write_study(tmp_path / "others", ["setting1", "setting2"], [0])
    summary = summarise(records_of(tmp_path / "others", names))
    assert summary["reference"] is None and all(r["vs_reference"] is None for r in summary["rows"])


def test_rows_follow_table_6_and_7_whatever_the_order_of_the_files(tmp_path):
    settings = ["setting2_random", "k3", "full", "setting2", "k1", "setting1"]
    names = write_study(tmp_path, settings, [0, 1])
    reversed_names = names[::-1]
    block = render_block("ablation", reversed_names, tmp_path)
    main, per_au = (table.splitlines() for table in block.split("\n\n") if table.startswith("| setting |"))
    for table in (main, per_au):  # the main table and the per-AU one, in the same order
        rows = [line.split("|")[1].strip().strip("*") for line in table[2:] if "label-only" not in line]
        assert rows == ["setting1", "setting2", "full", "k1", "k3", "setting2_random"]
    assert rows == sorted(rows, key=SETTING_ORDER.index)
    full_row = next(line for line in block.splitlines() if line.startswith("| **full**"))
    assert "| reference |" in full_row
    random_row = next(line for line in block.splitlines() if line.startswith("| setting2_random"))
    assert "| ✓ | – | – | – | 2 | random |" in random_row


def test_report_names_budget_seeds_data_and_resolution(tmp_path):
    names = write_study(tmp_path, ["full", "setting1"], [0, 1, 2])
    block = render_block("ablation", names, tmp_path)
    head = block.split("\n\n")[0]
    assert "DISFA, fold 1" in head and "`tiny` preset" in head and "2 epochs" in head
    assert "seeds 0, 1, 2" in head and "DISFA-tiny-seed0-fake" in head and "3 test subjects" in head
    assert "**Resolution.** Two seeds of the full model differ by" in block
    assert "F1 points** are not resolved at this budget" in block
    assert "| label-only baseline (" in block


def test_report_refuses_mixed_budgets_and_missing_predictions(tmp_path):
    from mgrr_pyg.train.report import ReportError

    names = write_study(tmp_path, ["full", "setting1"], [0])
    other = json.loads((tmp_path / names[1]).read_text())
    other["config"]["epochs"] = 5
    (tmp_path / names[1]).write_text(json.dumps(other))
    with pytest.raises(ReportError, match=r"ran on different budgets \(epochs: 2 != 5\)"):
        render_block("ablation", names, tmp_path)
    other["config"]["epochs"] = 2
    (tmp_path / names[1]).write_text(json.dumps(other))
    (tmp_path / "setting1-seed0" / "predictions_test.npz").unlink()
    with pytest.raises(ReportError, match=r"setting1-seed0/predictions_test.npz does not exist"):
        render_block("ablation", names, tmp_path)


def test_the_study_report_regenerates_from_its_files(tmp_path, messages):
    study(tmp_path, messages, settings=("full", "k1"), seeds=(0, 1))
    out = tmp_path / "out"
    pages = [out / "ablation.md", out / "DISFA" / "ablation.md"]
    assert update(pages, check=True) == []
    saved = json.loads((out / "DISFA" / "ablation.json").read_text())
    assert [r["setting"] for r in saved["rows"]] == ["full", "k1"]
    # a results file changed afterwards: the pages no longer match it
    path = out / "DISFA" / "k1-seed0" / "results.json"
    data = json.loads(path.read_text())
    data["metrics"]["f1_mean"] = 0.99
    data["metrics"]["f1"] = [0.99] * len(AUS)
    path.write_text(json.dumps(data))
    assert update(pages, check=True) == pages


@pytest.mark.parametrize("argv, message", [
    (["--seed", "3"], "argument --seed: the study runs --seeds"),
    (["--ablation", "k1"], "argument --ablation: the study runs --settings"),
    (["--data-root", "/data/DISFA"], "one data root is one dataset; run each dataset with its own"),
    (["--dataset", "ck+"], "argument --dataset: invalid choice: 'ck+'"),
    (["--settings", "full", "setting1", "--reference", "k3"],
     "argument --reference: expected one of the study's --settings (full setting1), found --reference k3"),
])
def test_command_line_refuses_per_run_options(argv, message, capsys, tmp_path):
    from mgrr_pyg.train.cli import ablation_main

    with pytest.raises(SystemExit) as stop:
        ablation_main(argv + ["--output", str(tmp_path / "out")], prog="run_ablation.py")
    assert stop.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# -- a real run, end to end ---------------------------------------------------------------
TINY = ["--synthetic-preset", "tiny", "--preset", "tiny", "--epochs", "1", "--batch-size", "4",
        "--max-train-frames", "8", "--max-test-frames", "6", "--workers", "0", "--device", "cpu",
        "--no-tensorboard", "--jobs", "1"]


def test_one_real_tiny_run_per_setting_writes_the_report(tmp_path):
    from mgrr_pyg.train.cli import ablation_main

    out = tmp_path / "ablation"
    result = ablation_main(TINY + ["--cache-dir", str(tmp_path / "cache"), "--output", str(out),
                                   "--dataset", "disfa", "--settings", "setting1", "full", "--seeds", "0"])
    assert [(o.run.name, o.status) for o in result.outcomes] == [("DISFA/setting1-seed0", "done"),
                                                                 ("DISFA/full-seed0", "done")]
    run = out / "DISFA" / "setting1-seed0"
    model = json.loads((run / "model_config.json").read_text())
    assert model["use_region_graph"] is False and model["use_pixel"] is False
    assert "CPU threads:" in (run / "train.log").read_text()
    assert json.loads((out / "DISFA" / "budget.json").read_text())["budget"]["epochs"] == 1
    table = (out / "DISFA" / "ablation.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith("| setting1 |"))
    f1 = 100 * json.loads((run / "results.json").read_text())["metrics"]["f1_mean"]
    assert f"| {f1:.1f} |" in row and "| – | – | – | – | 2 | – |" in row
    check = subprocess.run([sys.executable, "-m", "mgrr_pyg.train.report", "--check", str(out / "ablation.md")],
                           capture_output=True, text=True, cwd=REPO)
    assert check.returncode == 0, check.stdout + check.stderr
