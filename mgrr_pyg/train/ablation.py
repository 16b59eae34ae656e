"""The paper's ablations (Table 6 settings, Table 7 depths, the randomly initialised
adjacency of section 4.5.1) as an instrument: several seeds per setting on one budget,
run in parallel and resumably, and a report that says which differences to the full
model (or another reference setting) stand out from the noise.

The study (:func:`run_study`, ``examples/run_ablation.py``):

- one run per dataset x setting x seed, each in its own folder
  ``<output>/<dataset>/<setting>-seed<s>/`` (``mgrr-train``'s outputs: ``results.json``,
  ``predictions_test.npz``, checkpoints, plus ``train.log``), seed by seed (every setting
  of a seed before the next seed: a study stopped part way has whole seeds);
- the budget (every training setting except the setting, the seed and what only changes
  where or how fast a run goes: :data:`NOT_BUDGET_KEYS`) is written to
  ``<output>/<dataset>/budget.json`` by the first study there; a later study with another
  budget is refused before anything runs, and so is a run folder whose ``config.json``
  or ``results.json`` holds another budget: runs of two budgets are never mixed;
- a finished run (its ``results.json`` and predictions there, same budget) is skipped and
  said so; an interrupted one resumes from its ``last.pt`` (the trainer checkpoints every
  ``--checkpoint-minutes``); the others start;
- ``jobs`` runs at a time, each in its own process (``spawn``) with ``threads`` intra-op
  threads (default: one process per usable CPU, one thread each: the package's thread
  policy, :mod:`mgrr_pyg.utils.threads`, for a machine shared by several jobs);
- a failed run does not stop the others; the failures are listed at the end with their
  log files.

The report (:func:`summarise`, :func:`render_summary`) is made from the runs'
``results.json`` files and the ``predictions_test.npz`` beside each: per setting, in the
fixed order of :data:`SETTING_ORDER`, mean and std over seeds of mean F1 and ROC AUC,
the per-seed F1, the label-only baseline per seed, and the paired bootstrap 95 %
interval of the setting's F1 difference to the reference setting (same seed paired, test
subjects resampled: :mod:`mgrr_pyg.train.bootstrap`), and whether the reference beats the
label-only baseline on every seed. Its header states the budget, the seeds, the data and
the smallest difference the study resolves (from the reference's seed pairs). Then the
per-AU F1 of every setting and, on synthetic data with weak AUs (the ``tied`` preset,
whose ties the runs' adjacency files record), the weak AUs' mean F1 with its own paired
interval: the AUs relational reasoning should help.

The reference is the full model unless the study names another one of its settings
(``reference``, ``--reference``: ``setting1`` asks what D_G adds in ``setting2``). Against
``full`` the report is the ``ablation`` block of :mod:`mgrr_pyg.train.report`, against
another setting the ``ablation-vs-<reference>`` block, in ``ablation.md`` or
``ablation-vs-<reference>.md`` / ``.json`` (:func:`report_stem`); ``python -m
mgrr_pyg.train.report <output>/<page>.md`` regenerates either. :func:`publish_study`
(``--publish DIR``) copies what the report needs of each finished run (no checkpoints, no
landmarks) to a folder to commit and writes the report there.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import multiprocessing
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
import dataclasses
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

import numpy as np

from mgrr_pyg.train.config import ABLATIONS, TrainConfig
from mgrr_pyg.train.logging import Log, console
from mgrr_pyg.utils.io import atomic_save_bytes, atomic_save_text
from mgrr_pyg.utils.records import config_differences, plain

#: The report's row order: Table 6 (setting 1 ... 6, full), Table 7 (K = 1, 2, 3) and the
#: randomly initialised adjacency; whatever order the runs finish in.
SETTING_ORDER = ("setting1", "setting2", "setting3", "setting4", "setting5", "setting6", "full",
                 "k1", "k2", "k3", "setting2_random", "full_random")
#: What ``examples/run_ablation.py`` runs by default: ``k2`` is the full model (K = 2);
#: ``full_random`` (not in the paper) only when asked for (``--settings``).
DEFAULT_SETTINGS = tuple(s for s in SETTING_ORDER if s not in ("k2", "full_random"))
#: The setting every other one is compared with, unless the study names another
#: (``--reference``: e.g. ``setting1`` for what the region graph D_G adds in setting 2).
REFERENCE_SETTING = "full"
DEFAULT_SEEDS = (0, 1, 2)
#: Dataset names as ``--dataset`` takes them (either case) -> the package's.
DATASET_NAMES = {"bp4d": "BP4D", "disfa": "DISFA"}

#: What each setting is, for the report (the paper's Table 6 / 7 and section 4.5.1).
SETTING_DESCRIPTIONS = {
    "setting1": "Table 6 setting 1: no relational reasoning (the paper's baseline)",
    "setting2": "Table 6 setting 2: the region graph D_G only",
    "setting3": "Table 6 setting 3: D_G and the original global feature O_G",
    "setting4": "Table 6 setting 4: D_G, channel- and pixel-level attention (C_G, P_G)",
    "setting5": "Table 6 setting 5: D_G, O_G and C_G",
    "setting6": "Table 6 setting 6: D_G, O_G and P_G",
    "full": "Table 6 full model (D_G, O_G, C_G, P_G), K = 2 reasoning layers (= Table 7 K = 2)",
    "k1": "Table 7: the full model with K = 1 reasoning layer",
    "k2": "Table 7: the full model with K = 2 reasoning layers (the same model as full)",
    "k3": "Table 7: the full model with K = 3 reasoning layers",
    "setting2_random": "section 4.5.1: setting 2 (D_G only) with the adjacency A initialised at "
                       "random instead of from the training labels' co-occurrence prior (the "
                       "paper: 65.0 -> 64.7 DISFA F1)",
    "full_random": "not in the paper: the full model with the adjacency A initialised at "
                   "random instead of from the co-occurrence prior",
}

#: Keys of a run's configuration that are not its budget: the run's own setting, seed
#: and folder, and what changes only where or how fast it runs.
PER_RUN_KEYS = frozenset({"ablation", "seed", "output"})
NOT_BUDGET_KEYS = PER_RUN_KEYS | frozenset(
    {"resume", "overwrite", "workers", "log_every", "progress", "tensorboard", "checkpoint_every",
     "checkpoint_minutes", "cache_dir", "prepared_root", "image_root", "compile", "eval_batch_size",
     "device"})
BUDGET_FILE = "budget.json"
RUN_LOG = "train.log"


class BudgetMismatchError(ValueError):
    """A study or run folder that holds runs of another budget."""


# -- budget -------------------------------------------------------------------------------
def budget_of(config: Mapping) -> dict:
    """The budget of a run's configuration dict: every key but :data:`NOT_BUDGET_KEYS`
    (keys a run of an older version lacks read as their defaults)."""
    complete = TrainConfig.complete_dict(dict(config))
    return {key: value for key, value in sorted(complete.items()) if key not in NOT_BUDGET_KEYS}


def study_budget(config: TrainConfig) -> dict:
    """What ``budget.json`` records for a dataset's study: the budget and the data it
    runs on (the synthetic set's cache name, which changes with the generator)."""
    from mgrr_pyg.train.data_sources import synthetic_name

    budget = budget_of(config.to_dict())
    data = synthetic_name(config) if config.data_root is None else f"data_root {config.data_root}"
    return {"budget": budget, "data": data}


def budget_digest(budget: Mapping) -> str:
    return hashlib.sha1(json.dumps(plain(dict(budget)), sort_keys=True).encode()).hexdigest()[:10]


def _mismatch(where: str, found: Mapping, expected: Mapping) -> str:
    diffs = config_differences(found, expected)
    return (f"{where}: holds runs of another budget; keys that differ (found there != this study):\n  "
            + "\n  ".join(diffs) + "\nRuns of two budgets are never mixed: give this budget another "
            "--output folder, or delete that one to start afresh.")


def check_study_budget(folder: Path, record: Mapping) -> bool:
    """Refuse (:class:`BudgetMismatchError`) a study folder whose ``budget.json`` holds
    another budget or data; write it if there is none. Returns whether it was there."""
    path = Path(folder) / BUDGET_FILE
    if path.exists():
        try:
            found = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise BudgetMismatchError(f"{path}: not readable as JSON ({err}); delete it if the folder "
                                      "holds no runs") from None
        # a setting added to the package since then reads as its default (what that study ran)
        flat_found = {**budget_of(found.get("budget", {})), "data": found.get("data")}
        flat_expected = {**budget_of(record["budget"]), "data": record["data"]}
        if flat_found != flat_expected:
            raise BudgetMismatchError(_mismatch(str(path), flat_found, flat_expected))
        return True
    atomic_save_text(path, json.dumps(plain({**record, "digest": budget_digest(record["budget"])}), indent=2))
    return False


# -- the plan -----------------------------------------------------------------------------
@dataclass
class PlannedRun:
    """One run of the study: its setting, seed, folder and full configuration."""

    dataset: str
    setting: str
    seed: int
    run_dir: Path
    config: TrainConfig

    @property
    def name(self) -> str:
        return f"{self.dataset}/{self.setting}-seed{self.seed}"

    @property
    def log_path(self) -> Path:
        return self.run_dir / RUN_LOG


def run_folder(output: Path, dataset: str, setting: str, seed: int) -> Path:
    return Path(output) / dataset / f"{setting}-seed{seed}"


def parse_datasets(names: Sequence[str]) -> list[str]:
    """``["bp4d", "DISFA"]`` -> ``["BP4D", "DISFA"]``; an unknown name is a ValueError."""
    out = []
    for name in names:
        if name.lower() not in DATASET_NAMES:
            raise ValueError(f"dataset: expected bp4d or disfa, found {name!r}")
        if DATASET_NAMES[name.lower()] not in out:
            out.append(DATASET_NAMES[name.lower()])
    return out


def plan_study(configs: Mapping[str, TrainConfig], settings: Sequence[str] = DEFAULT_SETTINGS,
               seeds: Sequence[int] = DEFAULT_SEEDS, output: Path = Path("runs/ablation")) -> list[PlannedRun]:
    """Every dataset x setting x seed of the study (``configs``: the budget per dataset;
    their ``ablation``, ``seed`` and ``output`` are set per run), in the order they run:
    per dataset seed by seed, every setting of a seed before the next seed, so a study
    stopped part way (e.g. at the end of a sitting) has whole seeds, each pairable with the
    reference setting's run of the same seed."""
    unknown = [s for s in settings if s not in ABLATIONS]
    if unknown:
        raise ValueError(f"settings: unknown {unknown}; expected some of {sorted(ABLATIONS)}")
    if not settings:
        raise ValueError("settings: expected at least one setting")
    if not seeds:
        raise ValueError("seeds: expected at least one seed")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds: expected each seed once, found {list(seeds)}")
    ordered = sorted(dict.fromkeys(settings), key=setting_rank)
    runs = []
    for dataset, config in configs.items():
        for seed in seeds:
            for setting in ordered:
                folder = run_folder(output, dataset, setting, seed)
                runs.append(PlannedRun(dataset, setting, int(seed), folder,
                                       config.replace(ablation=setting, seed=int(seed), output=str(folder))))
    return runs


def setting_rank(setting: str) -> tuple:
    """Sort key of the report's rows: :data:`SETTING_ORDER`, then any other name."""
    return (SETTING_ORDER.index(setting), "") if setting in SETTING_ORDER else (len(SETTING_ORDER), setting)


def run_state(run: PlannedRun) -> str:
    """``"finished"`` (results and predictions there, same budget), ``"interrupted"``
    (a checkpoint to resume from) or ``"new"``. A folder written by a run of another
    budget, setting or seed is a :class:`BudgetMismatchError`."""
    expected = run.config.to_dict()
    for name in ("results.json", "config.json"):
        path = run.run_dir / name
        if not path.exists():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue  # a broken file: the run is redone (the trainer checks its checkpoint)
        found = data.get("config", {}) if name == "results.json" else data
        if not isinstance(found, dict):
            continue
        found_run = {k: found.get(k) for k in ("ablation", "seed")}
        if found_run != {k: expected[k] for k in ("ablation", "seed")}:
            raise BudgetMismatchError(f"{path}: a run of ablation {found_run['ablation']!r}, seed "
                                      f"{found_run['seed']!r}, in the folder of {run.name}; move it away")
        if budget_of(found) != budget_of(expected):
            raise BudgetMismatchError(_mismatch(str(path), budget_of(found), budget_of(expected)))
    if (run.run_dir / "results.json").exists() and (run.run_dir / "predictions_test.npz").exists():
        return "finished"
    if (run.run_dir / "last.pt").exists():
        return "interrupted"
    return "new"


# -- running ------------------------------------------------------------------------------
#: ``runner(config_dict, log_path, threads) -> dict``: trains one run (in a worker process
#: when ``jobs > 1``: a module-level function, so that ``spawn`` can import it).
Runner = Callable[[dict, str, Optional[int]], dict]


def train_run(config: dict, log_path: str, threads: Optional[int] = None) -> dict:
    """The default :data:`Runner`: ``run_training`` with its console output (messages,
    warnings, tracebacks) in ``log_path``, then the learned adjacency against the
    synthetic truth (:func:`adjacency_hook`). Returns the mean F1 and the time."""
    from mgrr_pyg.train.pipeline import run_training
    from mgrr_pyg.utils.threads import apply_thread_policy, describe_threads

    started = time.perf_counter()
    path = Path(log_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle, contextlib.redirect_stdout(handle), \
            contextlib.redirect_stderr(handle):
        def log(message: str) -> None:
            print(message, flush=True)

        log(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} ===")
        log(describe_threads(apply_thread_policy(threads)))
        try:
            result = run_training(TrainConfig.from_dict(config), log=log)
        except BaseException:
            traceback.print_exc(file=handle)
            raise
        adjacency_hook(Path(config["output"]), log)
    return {"f1_mean": float(result.metrics.f1_mean), "seconds": time.perf_counter() - started}


ADJACENCY_FILE = "adjacency_agreement.json"


def adjacency_hook(run_dir: Path, log: Log = console) -> Optional[dict]:
    """Write ``adjacency_agreement.json`` into a finished run's folder: how close each
    layer's learned adjacency comes to the synthetic generator's AU relations and to the
    training prior (:func:`mgrr_pyg.train.adjacency_truth.adjacency_agreement`). Returns
    it, or ``None`` where that module is not installed. An error there is logged, not
    raised: the run itself is done."""
    try:
        from mgrr_pyg.train.adjacency_truth import adjacency_agreement
    except ImportError:  # HOOK (issue 13, part 2): the truth module is not in this version
        return None
    try:
        data = plain(adjacency_agreement(run_dir))
    except Exception as err:  # noqa: BLE001 - reported, the run's results stand
        log(f"adjacency agreement of {run_dir}: not computed ({type(err).__name__}: {err})")
        return None
    atomic_save_text(Path(run_dir) / ADJACENCY_FILE, json.dumps(data, indent=2))
    return data


@dataclass
class RunOutcome:
    run: PlannedRun
    status: str  # "skipped" (finished before), "done", "failed"
    seconds: float = 0.0
    error: Optional[str] = None


def default_jobs() -> int:
    """One process per usable CPU."""
    from mgrr_pyg.utils.threads import usable_cpus

    return usable_cpus()


def execute(runs: Sequence[PlannedRun], jobs: Optional[int] = None, threads: Optional[int] = None,
            runner: Runner = train_run, log: Log = console) -> list[RunOutcome]:
    """Run what is not finished, ``jobs`` at a time (``1``: in this process, one after the
    other). Every run folder is checked first (a budget mismatch stops the study before
    anything runs); a failed run is reported and the others go on."""
    jobs = default_jobs() if jobs is None else jobs
    if not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs: expected a positive integer, found {jobs!r}")
    if threads is None:
        threads = 1 if jobs > 1 else None  # None: the package's thread policy of one run
    states = {run.name: run_state(run) for run in runs}  # raises before anything runs
    outcomes: dict[str, RunOutcome] = {}
    todo = []
    for run in runs:
        if states[run.name] == "finished":
            outcomes[run.name] = RunOutcome(run, "skipped")
        else:
            todo.append(run)
    skipped = [name for name, state in states.items() if state == "finished"]
    if skipped:
        log(f"skipping {len(skipped)} finished run(s) (results.json there, same budget): "
            + ", ".join(skipped))
    if not todo:
        log("nothing to run: every run of the study is finished")
        return [outcomes[run.name] for run in runs]
    log(f"running {len(todo)} run(s), {min(jobs, len(todo))} at a time"
        + (f", {threads} intra-op thread(s) each" if threads else "")
        + "; each writes its console output to <run folder>/" + RUN_LOG)
    for run in todo:
        if states[run.name] == "interrupted":
            log(f"  {run.name}: resumes from its checkpoint {run.run_dir / 'last.pt'}")
    count = len(todo)

    def finished(position: int, run: PlannedRun, value=None, error: Optional[BaseException] = None,
                 seconds: float = 0.0) -> None:
        if error is None:
            seconds = float((value or {}).get("seconds", seconds))
            outcomes[run.name] = RunOutcome(run, "done", seconds)
            f1 = (value or {}).get("f1_mean")
            log(f"[{position}/{count}] {run.name}: done in {seconds / 60:.1f} min"
                + (f", mean F1 {100 * f1:.1f}" if isinstance(f1, float) else ""))
        else:
            text = f"{type(error).__name__}: {error}"
            outcomes[run.name] = RunOutcome(run, "failed", seconds, text)
            log(f"[{position}/{count}] {run.name}: FAILED ({text.splitlines()[0]})"
                + (f"; log: {run.log_path}" if run.log_path.exists() else ""))

    if jobs == 1:
        for position, run in enumerate(todo, 1):
            started = time.perf_counter()
            log(f"[{position}/{count}] {run.name}: {'resuming' if states[run.name] == 'interrupted' else 'starting'}")
            try:
                value = runner(run.config.to_dict(), str(run.log_path), threads)
            except KeyboardInterrupt:
                raise
            except Exception as err:  # noqa: BLE001 - reported at the end, the others go on
                finished(position, run, error=err, seconds=time.perf_counter() - started)
            else:
                finished(position, run, value)
    else:
        context = multiprocessing.get_context("spawn")
        done_count = 0
        with ProcessPoolExecutor(max_workers=min(jobs, count), mp_context=context) as pool:
            futures = {pool.submit(runner, run.config.to_dict(), str(run.log_path), threads): run
                       for run in todo}
            started = time.perf_counter()
            try:
                pending = set(futures)
                while pending:
                    ready, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in ready:
                        done_count += 1
                        run = futures[future]
                        try:
                            finished(done_count, run, future.result())
                        except BrokenProcessPool as err:
                            finished(done_count, run, error=RuntimeError(
                                f"its worker process died ({err}); a run killed (e.g. out of "
                                "memory) takes its pool with it: rerun to continue"),
                                seconds=time.perf_counter() - started)
                        except Exception as err:  # noqa: BLE001
                            finished(done_count, run, error=err, seconds=time.perf_counter() - started)
            except KeyboardInterrupt:
                for future in futures:
                    future.cancel()
                raise
    failed = [o for o in outcomes.values() if o.status == "failed"]
    if failed:
        log(f"\n{len(failed)} run(s) FAILED (the others are done; rerun the same command to retry them):")
        for outcome in failed:
            where = (f"log: {outcome.run.log_path}" if outcome.run.log_path.exists() else
                     "no log: the run did not start (its worker's error is in the console output above)")
            log(f"  {outcome.run.name}: {outcome.error.splitlines()[0]}\n    {where}")
    return [outcomes[run.name] for run in runs]


# -- the report ---------------------------------------------------------------------------
def _std(values: Sequence[float]) -> Optional[float]:
    return float(np.std(values, ddof=1)) if len(values) > 1 else None


def _mean_std(values) -> tuple:
    values = [v for v in values if v is not None]
    return (float(np.mean(values)), _std(values)) if values else (None, None)


def _finite(value) -> Optional[float]:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def _report_error(message: str):
    from mgrr_pyg.train.report import ReportError

    return ReportError(message)


def _group(records) -> dict[str, dict[int, object]]:
    runs: dict[str, dict[int, object]] = {}
    for record in records:
        setting = record.config.get("ablation") or "none"
        seed = int(record.config["seed"])
        if seed in runs.setdefault(setting, {}):
            raise _report_error(f"kind 'ablation': {runs[setting][seed].name} and {record.name} are both "
                                f"setting {setting!r}, seed {seed}")
        runs[setting][seed] = record
    return {s: dict(sorted(runs[s].items())) for s in sorted(runs, key=setting_rank)}


def _predictions(record, cache: dict):
    from mgrr_pyg.data import protocol
    from mgrr_pyg.train.bootstrap import load_subject_counts

    if record.name not in cache:
        if record.path is None:
            raise _report_error(f"kind 'ablation': {record.name}: the paired bootstrap needs the file's "
                                "folder (its predictions_test.npz)")
        path = Path(record.path).parent / "predictions_test.npz"
        if not path.exists():
            raise _report_error(f"kind 'ablation': {path} does not exist; the paired bootstrap needs "
                                f"each run's predictions_test.npz beside its results.json ({record.name})")
        try:
            cache[record.name] = load_subject_counts(path, protocol.subjects(record.config["dataset"]))
        except (ValueError, OSError) as err:
            raise _report_error(f"kind 'ablation': {err}") from None
    return cache[record.name]


def paired_runs(setting_runs: Mapping[int, object],
                reference_runs: Mapping[int, object]) -> list[tuple[int, object, object]]:
    """``(seed, run, reference run)`` for every seed both have: a setting's run is
    compared with the reference's run of the same seed (same data order and, where the
    setting allows, the same initialisation)."""
    return [(seed, setting_runs[seed], reference_runs[seed]) for seed in sorted(setting_runs)
            if seed in reference_runs]


def _bootstrap(pairs, cache, replicates, seed, what: str, aus: Optional[Sequence[int]] = None):
    """The paired bootstrap of ``pairs`` (mean F1 over every AU, or over ``aus`` only)."""
    from mgrr_pyg.train.bootstrap import paired_bootstrap

    counted, labels = [], []
    for pair_seed, a, b in pairs:
        (counts_a, frames_a), (counts_b, frames_b) = _predictions(a, cache), _predictions(b, cache)
        if frames_a.shape != frames_b.shape or np.any(frames_a != frames_b):
            raise _report_error(f"kind 'ablation': {a.name} and {b.name} were tested on different frames; "
                                f"{what} compares runs on the same test frames")
        if aus is not None:
            counts_a, counts_b = counts_a.select(aus), counts_b.select(aus)
        counted.append((counts_a, counts_b))
        labels.append(pair_seed)
    return paired_bootstrap(counted, replicates=replicates, seed=seed, labels=[str(s) for s in labels])


def _switches(record) -> dict:
    overrides = record.info.get("overrides") or {}
    return {key: overrides.get(key) for key in ("use_region_graph", "use_global", "use_channel", "use_pixel",
                                                "num_layers", "prior_init")}


def _adjacency(record) -> Optional[dict]:
    if record.path is None:
        return None
    path = Path(record.path).parent / ADJACENCY_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
    except (OSError, json.JSONDecodeError):
        return None


def _weak_aus(records) -> dict[int, int]:
    """Weak AU -> the strong AU it is tied to, as the runs' adjacency files record the
    synthetic set's structure (the ``tied`` preset); empty for other data."""
    for record in records:
        entry = _adjacency(record)
        if entry and entry.get("ties"):
            return {int(weak): int(strong) for weak, strong in entry["ties"]}
    return {}


def _per_au_f1(per_seed: Mapping[int, object]) -> dict[str, Optional[float]]:
    """Per AU, the mean over seeds of its F1 (%; None where no seed has one)."""
    first = next(iter(per_seed.values()))
    table = np.array([[100 * float(v) for v in r.metrics.f1] for r in per_seed.values()])
    out = {}
    for column, au in enumerate(first.metrics.aus):
        values = [v for v in table[:, column] if math.isfinite(v)]
        out[str(au)] = float(np.mean(values)) if values else None
    return out


def _weak_mean(record, weak: Sequence[int]) -> Optional[float]:
    aus = list(record.metrics.aus)
    values = [100 * float(record.metrics.f1[aus.index(au)]) for au in weak if au in aus]
    values = [v for v in values if math.isfinite(v)]
    return float(np.mean(values)) if values else None


def _adjacency_summary(per_seed: Mapping[int, object]) -> Optional[dict]:
    """Per layer, the mean over seeds of the learned adjacency's agreement with the truth."""
    found = [a for a in (_adjacency(r) for r in per_seed.values()) if a and a.get("layers")]
    if not found:
        return None
    layers = {}
    for entry in found:
        for layer in entry["layers"]:
            for key in ("spearman_truth", "spearman_prior", "auc_truth"):
                value = layer.get(key)
                if value is not None:
                    layers.setdefault(int(layer["layer"]), {}).setdefault(key, []).append(float(value))
    prior = [e["prior_vs_truth"].get("spearman") for e in found if e.get("prior_vs_truth")]
    return {"seeds": len(found), "truth_definition": found[0].get("truth_definition"),
            "prior_spearman_truth": float(np.mean([p for p in prior if p is not None]))
            if any(p is not None for p in prior) else None,
            "layers": {layer: {key: float(np.mean(v)) for key, v in values.items()}
                       for layer, values in sorted(layers.items())}}


def check_reference(reference: str, settings: Sequence[str], where: str = "reference",
                    what: str = "the study's settings") -> None:
    """Refuse (a ValueError) a reference setting that is not among ``settings``; the default,
    :data:`REFERENCE_SETTING`, may be absent (a study of other settings: a table without
    intervals, as before there was a choice)."""
    if reference != REFERENCE_SETTING and reference not in settings:
        raise _report_error(f"{where}: expected one of {what} ({', '.join(settings) or 'none'}), "
                            f"found {reference!r}")


def summarise(records, replicates: Optional[int] = None, bootstrap_seed: Optional[int] = None,
              reference: str = REFERENCE_SETTING) -> dict:
    """Everything the report shows, from the runs' records (:class:`~mgrr_pyg.train.report.RunRecord`
    with their paths): one dataset, one budget, one test set. Every setting is compared with
    ``reference`` (its runs of the same seeds); its seed pairs (``full_seed_pairs``) give the
    seed noise. A reference without runs here is a ValueError, except the default ``full``:
    without it the table has no intervals."""
    from mgrr_pyg.train.bootstrap import DEFAULT_BOOTSTRAP_SEED, DEFAULT_REPLICATES

    replicates = DEFAULT_REPLICATES if replicates is None else replicates
    bootstrap_seed = DEFAULT_BOOTSTRAP_SEED if bootstrap_seed is None else bootstrap_seed
    if not records:
        raise _report_error("kind 'ablation': expected results files, found none")
    datasets = sorted({r.config["dataset"] for r in records})
    if len(datasets) != 1:
        raise _report_error(f"kind 'ablation': one dataset per table, found {datasets}")
    budgets = {}
    for record in records:
        budgets.setdefault(budget_digest(budget_of(record.config)), record)
    if len(budgets) != 1:
        first, other = list(budgets.values())[:2]
        raise _report_error(f"kind 'ablation': {first.name} and {other.name} ran on different budgets ("
                            + "; ".join(config_differences(budget_of(first.config), budget_of(other.config)))
                            + "); one table, one budget")
    runs = _group(records)
    check_reference(reference, list(runs), "kind 'ablation': reference", "the settings of these runs")
    ties = _weak_aus(records)
    weak = sorted(ties)
    cache: dict = {}
    reference_name, reference = reference, runs.get(reference)
    seeds = sorted({seed for per_seed in runs.values() for seed in per_seed})
    rows = []
    for setting, per_seed in runs.items():
        f1 = {seed: 100 * r.metrics.f1_mean for seed, r in per_seed.items()}
        auc = {seed: 100 * r.metrics.auc_mean for seed, r in per_seed.items()}
        row = {"setting": setting, "description": SETTING_DESCRIPTIONS.get(setting, ""),
               "switches": _switches(next(iter(per_seed.values()))),
               "seeds": sorted(per_seed), "missing_seeds": [s for s in seeds if s not in per_seed],
               "f1_per_seed": {str(s): v for s, v in f1.items()},
               "auc_per_seed": {str(s): _finite(v) for s, v in auc.items()},
               "f1_mean": float(np.mean(list(f1.values()))), "f1_std": _std(list(f1.values())),
               "auc_mean": _mean_std([_finite(v) for v in auc.values()])[0],
               "auc_std": _mean_std([_finite(v) for v in auc.values()])[1],
               "vs_reference": None, "adjacency": _adjacency_summary(per_seed),
               "f1_per_au": _per_au_f1(per_seed), "files": [r.name for r in per_seed.values()]}
        if weak:
            values = [v for v in (_weak_mean(r, weak) for r in per_seed.values()) if v is not None]
            row["weak_f1_mean"], row["weak_f1_std"] = _mean_std(values)
            row["weak_vs_reference"] = None
        if reference is not None and setting != reference_name:
            pairs = paired_runs(per_seed, reference)
            if pairs:
                interval = _bootstrap(pairs, cache, replicates, bootstrap_seed, "the paired bootstrap")
                row["vs_reference"] = {**interval.to_dict(), "seed_spread": _std(interval.per_pair)}
                if weak:
                    interval = _bootstrap(pairs, cache, replicates, bootstrap_seed, "the paired bootstrap", weak)
                    row["weak_vs_reference"] = {**interval.to_dict(), "seed_spread": _std(interval.per_pair)}
        rows.append(row)
    # the label-only baselines (the same test frames for every run of a seed)
    anchor = reference if reference is not None else next(iter(runs.values()))
    baseline = {str(seed): {"name": r.best_baseline[0], "f1": 100 * r.best_baseline[1].f1_mean,
                            "auc": _finite(100 * r.best_baseline[1].auc_mean),
                            "f1_per_au": {str(au): _finite(100 * float(v)) for au, v in
                                          zip(r.best_baseline[1].aus, r.best_baseline[1].f1)}}
                for seed, r in anchor.items()}
    margins = None
    if reference is not None:
        margins = {str(seed): 100 * (r.metrics.f1_mean - r.best_baseline[1].f1_mean) for seed, r in reference.items()}
    # resolution: two seeds of the reference, and the width of the intervals
    seed_pairs = []
    if reference is not None:
        ref_seeds = sorted(reference)
        for i, a in enumerate(ref_seeds):
            for b in ref_seeds[i + 1:]:
                entry = _bootstrap([(f"{a}-{b}", reference[a], reference[b])], cache, replicates,
                                   bootstrap_seed, "the seed-noise check").to_dict()
                seed_pairs.append({"seeds": f"{a}-{b}", **{k: entry[k] for k in ("difference", "low", "high")}})
    widths = [row["vs_reference"]["half_width"] for row in rows if row["vs_reference"]]
    spreads = [row["vs_reference"]["seed_spread"] for row in rows
               if row["vs_reference"] and row["vs_reference"]["seed_spread"] is not None]
    typical = 100 * float(np.median(widths)) if widths else None
    seed_half = (100 * 2 * float(np.median(spreads)) / math.sqrt(len(seeds))) if spreads else None
    known = [v for v in (typical, seed_half) if v is not None]
    first = next(iter(next(iter(runs.values())).values()))
    return {
        "units": "F1 / AUC means, per-seed values, baseline, margins, half-widths and resolution: percent "
                 "(F1 points); vs_reference and full_seed_pairs: fractions (0.01 = 1 F1 point)",
        "dataset": datasets[0], "budget": budget_of(first.config),
        "budget_digest": budget_digest(budget_of(first.config)),
        "data": (first.data.get("data") or {}).get("synthetic_set") or first.info.get("source"),
        "preset": first.info.get("preset", first.config.get("preset")),
        "train_frames": first.info.get("train_frames"), "test_frames": first.info.get("test_frames"),
        "test_subjects": first.info.get("test_subjects"), "fold": first.config.get("fold"),
        "seeds": seeds, "reference": reference_name if reference is not None else None,
        "bootstrap": {"replicates": replicates, "seed": bootstrap_seed, "confidence": 0.95,
                      "resampled": "test subjects, with replacement, one draw shared by the seed pairs"},
        "rows": rows, "baseline": baseline, "reference_margin_over_baseline": margins,
        "reference_beats_baseline_every_seed": None if margins is None else all(m > 0 for m in margins.values()),
        "full_seed_pairs": seed_pairs,
        "full_seed_mean_abs_difference": 100 * float(np.mean([abs(p["difference"]) for p in seed_pairs]))
        if seed_pairs else None,
        "typical_half_width": typical, "seed_noise_half_width": seed_half,
        "resolution": max(known) if known else None,
        "aus": [int(au) for au in first.metrics.aus],
        "weak_aus": {str(w): ties[w] for w in weak},
    }


_MARK = {True: "✓", False: "–"}


def _pm(mean: Optional[float], std: Optional[float]) -> str:
    if mean is None:
        return "n/a"
    return f"{mean:.1f}" + (f" ± {std:.1f}" if std is not None else "")


def _points(value: float) -> str:
    """A signed difference in F1 points (fractions in), one decimal, never ``-0.0``."""
    text = f"{100 * value:+.1f}"
    return "+0.0" if text == "-0.0" else text


def _interval(entry: Optional[dict]) -> str:
    if not entry:
        return "—"
    text = f"{_points(entry['difference'])} [{_points(entry['low'])}, {_points(entry['high'])}]"
    return f"**{text}**" if entry["low"] > 0 or entry["high"] < 0 else text


def _reference_words(reference: str) -> str:
    """How the report's prose names the reference setting."""
    return "the full model" if reference == REFERENCE_SETTING else f"`{reference}`"


def render_summary(summary: dict) -> str:
    """The ``ablation`` block's text (markdown) of :func:`summarise`."""
    from mgrr_pyg.train.report import describe_schedule

    budget, seeds = summary["budget"], summary["seeds"]
    reference = summary["reference"]
    lines = [f"**{summary['dataset']}, fold {summary['fold']}; budget `{summary['budget_digest']}`**: "
             f"`{summary['preset']}` preset, {describe_schedule({**budget, 'seed': 0}).rsplit(', seed', 1)[0]}"
             + f"; {summary['train_frames']} training frames, {summary['test_frames']} test frames of "
             f"{summary['test_subjects']} test subjects; data: `{summary['data']}`; seeds "
             f"{', '.join(str(s) for s in seeds)}. Mean over AUs, %."]
    if summary["resolution"] is not None:
        text = "**Resolution.**"
        pairs = summary["full_seed_pairs"]
        if pairs:
            text += (f" Two seeds of {_reference_words(reference)} differ by "
                     f"{summary['full_seed_mean_abs_difference']:.1f} F1 points on average (seeds " + ", ".join(
                         f"{p['seeds']}: {_points(p['difference'])} [{_points(p['low'])}, {_points(p['high'])}]"
                         for p in pairs) + ").")
        if summary["typical_half_width"] is not None:
            text += (f" The subject-bootstrap intervals below are ±{summary['typical_half_width']:.1f} points "
                     "wide (median)")
            if summary["seed_noise_half_width"] is not None:
                text += (f", the seed noise of a mean over {len(seeds)} paired seeds is about "
                         f"±{summary['seed_noise_half_width']:.1f} points (2 x the median seed spread / "
                         f"sqrt({len(seeds)}))")
            text += "."
        text += (f" Differences smaller than about **{summary['resolution']:.1f} F1 points** are not resolved "
                 "at this budget.")
        lines += ["", text]
    header = (["setting", "D_G", "O_G", "C_G", "P_G", "K", "A init", "F1 mean ± std", "AUC mean ± std",
               f"ΔF1 vs {reference} [95 % CI]" if reference else "ΔF1", "seed spread of ΔF1"]
              + [f"F1 seed {s}" for s in seeds])
    table = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in summary["rows"]:
        switches = row["switches"]
        marks = [_MARK.get(switches.get(k), "?") for k in ("use_region_graph", "use_global", "use_channel",
                                                           "use_pixel")]
        versus = row["vs_reference"]
        spread = versus.get("seed_spread") if versus else None
        name = f"**{row['setting']}**" if row["setting"] == reference else row["setting"]
        cells = ([name] + marks + [str(switches.get("num_layers", "?")),
                                   {"cooccurrence": "prior", "random": "random"}.get(switches.get("prior_init"),
                                                                                      str(switches.get("prior_init")))
                                   if switches.get("use_region_graph") else "–",
                                   _pm(row["f1_mean"], row["f1_std"]), _pm(row["auc_mean"], row["auc_std"]),
                                   "reference" if row["setting"] == reference else _interval(versus),
                                   "—" if spread is None else f"{100 * spread:.1f}"]
                 + [f"{row['f1_per_seed'][str(s)]:.1f}" if str(s) in row["f1_per_seed"] else "missing"
                    for s in seeds])
        table.append("| " + " | ".join(cells) + " |")
    baseline = summary["baseline"]
    names = sorted({b["name"] for b in baseline.values()})
    values = [b["f1"] for b in baseline.values()]
    table.append("| " + " | ".join([f"label-only baseline ({', '.join(names)})"] + [""] * 6
                                   + [_pm(float(np.mean(values)), _std(values)),
                                      _pm(*_mean_std([b["auc"] for b in baseline.values()])), "", ""]
                                   + [f"{baseline[str(s)]['f1']:.1f}" if str(s) in baseline else "" for s in seeds])
                 + " |")
    lines += ["", *table, ""]
    boot = summary["bootstrap"]
    lines.append(f"ΔF1: the mean over seeds of the paired difference to `{reference}` (the same seed); "
                 f"in brackets its 95 % interval from a paired bootstrap over the test subjects "
                 f"({boot['replicates']} replicates; {boot['resampled']}), **bold** where it excludes 0. "
                 "Seed spread: the std over seeds of the paired differences (seed noise, which the "
                 "subject bootstrap does not resample).")
    margins = summary["reference_margin_over_baseline"]
    if margins:
        if summary["reference_beats_baseline_every_seed"]:
            verdict = "beats it on every seed"
        elif reference == REFERENCE_SETTING:
            verdict = "does **not** beat it on every seed: at this budget the table says nothing about the settings"
        else:  # the other settings may still have learned: only the comparison with this one is moot
            verdict = ("does **not** beat it on every seed: the differences to it are to a model that, at "
                       "this budget, has learned no more than a label-only guess")
        named = _reference_words(reference)
        head = "Full model" if reference == REFERENCE_SETTING else named
        lines += ["", head + " minus the best label-only baseline, per seed: "
                      + ", ".join(f"{m:+.1f}" for m in margins.values()) + f" F1 points; {named} {verdict}."]
    lines += _render_per_au(summary)
    missing = [f"{row['setting']} (seed {', '.join(str(s) for s in row['missing_seeds'])})"
               for row in summary["rows"] if row["missing_seeds"]]
    if missing:
        lines += ["", "Runs missing (not finished or failed): " + "; ".join(missing) + "."]
    adjacency = [(row["setting"], row["adjacency"]) for row in summary["rows"] if row["adjacency"]]
    if adjacency:
        lines += ["", "Learned adjacency vs the generator's AU relations (Spearman of the off-diagonal "
                      "entries, mean over seeds; edge-recovery AUC scored by the signed A):", "",
                  "| setting | layer | Spearman vs truth | Spearman vs prior | edge AUC | prior vs truth |",
                  "|---|---|---|---|---|---|"]
        for setting, entry in adjacency:
            for layer, values in entry["layers"].items():
                lines.append(f"| {setting} | {layer} | " + " | ".join(
                    "n/a" if values.get(k) is None else f"{values[k]:.2f}"
                    for k in ("spearman_truth", "spearman_prior", "auc_truth"))
                    + " | " + ("n/a" if entry["prior_spearman_truth"] is None
                               else f"{entry['prior_spearman_truth']:.2f}")
                    + " |")
    lines += ["", "Settings: " + "; ".join(f"`{row['setting']}`: {row['description']}"
                                           for row in summary["rows"] if row["description"]) + "."]
    return "\n".join(lines)


def _render_per_au(summary: dict) -> list[str]:
    """The per-AU F1 table and, on data with weak AUs (``tied``), their own comparison."""
    rows, aus = summary["rows"], summary.get("aus") or []
    if not aus or any("f1_per_au" not in row for row in rows):
        return []
    weak = {int(w): s for w, s in (summary.get("weak_aus") or {}).items()}
    reference = summary["reference"]

    def cell(value):
        return "n/a" if value is None else f"{value:.1f}"

    header = ["setting"] + [f"AU{au} (weak)" if au in weak else f"AU{au}" for au in aus]
    lines = ["", "Per-AU F1, mean over seeds (%):", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        name = f"**{row['setting']}**" if row["setting"] == reference else row["setting"]
        lines.append("| " + " | ".join([name] + [cell(row["f1_per_au"].get(str(au))) for au in aus]) + " |")
    baselines = list(summary["baseline"].values())
    if all("f1_per_au" in b for b in baselines):
        means = []
        for au in aus:
            values = [b["f1_per_au"].get(str(au)) for b in baselines]
            values = [v for v in values if v is not None]
            means.append(float(np.mean(values)) if values else None)
        lines.append("| " + " | ".join(["label-only baseline"] + [cell(v) for v in means]) + " |")
    if weak and all("weak_f1_mean" in row for row in rows):
        from mgrr_pyg.data.synthetic.expressions import WEAK_CUE_SHARE

        ties = ", ".join(f"AU{w} with AU{s}" for w, s in sorted(weak.items()))
        lines += ["", f"**The weak AUs** (drawn with {100 * WEAK_CUE_SHARE:.0f} % of their visual effect, tied "
                      "to a strong AU through "
                      f"the expressions: {ties}): their mean F1 per setting and its paired difference to "
                      f"`{reference}`, bootstrapped like the table above:" if reference else
                      f"**The weak AUs** ({ties}): their mean F1 per setting:", "",
                  f"| setting | weak-AU F1 mean ± std | ΔF1 vs {reference} [95 % CI] | seed spread of ΔF1 |",
                  "|---|---|---|---|"]
        for row in rows:
            versus = row.get("weak_vs_reference")
            spread = versus.get("seed_spread") if versus else None
            name = f"**{row['setting']}**" if row["setting"] == reference else row["setting"]
            lines.append(f"| {name} | {_pm(row['weak_f1_mean'], row['weak_f1_std'])} | "
                         + ("reference" if row["setting"] == reference else _interval(versus))
                         + " | " + ("—" if spread is None else f"{100 * spread:.1f}") + " |")
    return lines


def render_ablation_block(records, reference: str = REFERENCE_SETTING) -> str:
    """The ``ablation`` kind of :mod:`mgrr_pyg.train.report` (``reference`` ``full``; the
    ``ablation-vs-<reference>`` kind for another): :func:`render_summary` of the records,
    then how they were made."""
    from mgrr_pyg.train.report import ReportError, run_parts

    try:
        summary = summarise(records, reference=reference)
    except ReportError as err:  # its messages name the default kind
        if reference == REFERENCE_SETTING:
            raise
        raise ReportError(str(err).replace("kind 'ablation'", f"kind '{report_stem(reference)}'", 1)) from None
    made, loads = {}, []
    for record in records:
        for part, text in run_parts(record).items():
            if part in ("Command", "Time", "Model and schedule"):
                continue
            if part == "Machine" and "; load average" in text:  # differs run by run: a range below
                text = text.split("; load average")[0]
                load = ((record.data.get("environment") or {}).get("machine") or {}).get("load_average_1_5_15_min")
                if load:
                    loads.append(load[0])
            made.setdefault(part, set()).add(text)
    if loads:
        made["Machine"] = {f"{text}; load average (1 min) {min(loads):.1f}-{max(loads):.1f} when the runs finished"
                           for text in made["Machine"]}
    seconds = [r.data["seconds"] for r in records]
    commands = sorted({run_parts(r)["Command"] for r in records})
    lines = [render_summary(summary), "", "How they were made:", "",
             f"- Command{'s' if len(commands) > 1 else ''}: {' / '.join(commands)}; one process per run",
             *[f"- {part}: {' / '.join(sorted(texts))}" for part, texts in made.items()],
             f"- Time: {len(records)} runs, {min(seconds) / 60:.1f}-{max(seconds) / 60:.1f} min each, "
             f"{sum(seconds) / 3600:.1f} h in all"]
    return "\n".join(lines)


# -- the study ----------------------------------------------------------------------------
@dataclass
class StudyResult:
    output_dir: Path
    outcomes: list
    summaries: dict = field(default_factory=dict)  # dataset -> summarise()
    markdown: str = ""

    @property
    def failed(self) -> list:
        return [o for o in self.outcomes if o.status == "failed"]


def report_stem(reference: str = REFERENCE_SETTING) -> str:
    """The report's file name without suffix, which is also its results-block kind
    (:mod:`mgrr_pyg.train.report`): ``ablation`` (compared with ``full``), else
    ``ablation-vs-<reference>``."""
    return "ablation" if reference == REFERENCE_SETTING else f"ablation-vs-{reference}"


def write_report(output: Path, datasets: Sequence[str], runs: Sequence[PlannedRun],
                 log: Log = console, reference: str = REFERENCE_SETTING) -> tuple[dict, str]:
    """``<output>/<dataset>/ablation.md`` / ``ablation.json`` per dataset and
    ``<output>/ablation.md`` with every dataset's block, from the finished runs, every
    setting compared with ``reference`` (another one than ``full``: the files
    ``ablation-vs-<reference>.*``, :func:`report_stem`)."""
    from mgrr_pyg.train.report import ReportError, load_run, render_block

    output = Path(output)
    stem = report_stem(reference)  # the file name and the results-block kind
    summaries, sections = {}, []
    for dataset in datasets:
        finished = [r for r in runs if r.dataset == dataset and (r.run_dir / "results.json").exists()
                    and (r.run_dir / "predictions_test.npz").exists()]
        if not finished:
            sections.append(f"## {dataset}\n\nNo finished runs yet.")
            continue
        for run in finished:  # runs finished before the truth module existed
            if not (run.run_dir / ADJACENCY_FILE).exists():
                adjacency_hook(run.run_dir, log)
        folder = output / dataset
        names = [f"{r.setting}-seed{r.seed}/results.json" for r in finished]
        try:
            records = [load_run(folder / name, name) for name in names]
            summaries[dataset] = summarise(records, reference=reference)
            block = render_block(stem, names, folder)
        except ReportError as err:
            log(f"ablation report of {dataset}: {err}")
            sections.append(f"## {dataset}\n\nNo report: {err}")
            continue
        title = f"# Ablations on {dataset} (Table 6 / 7)"
        compared = "" if reference == REFERENCE_SETTING else (
            f"Every setting compared with `{reference}` (`ablation.md`, where there is one, compares with "
            "`full`). ")
        regenerate = (f"{compared}Made from the runs' results files (and the predictions beside them); "
                      f"`python -m mgrr_pyg.train.report {stem}.md` in this folder regenerates the table.")
        atomic_save_text(folder / f"{stem}.md", f"{title}\n\n{regenerate}\n\n{block}\n")
        atomic_save_text(folder / f"{stem}.json", json.dumps(plain(summaries[dataset]), indent=2))
        outer = render_block(stem, [f"{dataset}/{n}" for n in names], output)
        sections.append(f"## {dataset}\n\n{outer}")
    versus = "" if reference == REFERENCE_SETTING else f" vs `{reference}`"
    compared = "" if reference == REFERENCE_SETTING else " (`ablation.md`, where there is one, compares with `full`)"
    intro = (f"# Ablations (Table 6 settings, Table 7 depths, random adjacency initialisation){versus}\n\n"
             f"Made from the runs' results files; `python -m mgrr_pyg.train.report {stem}.md` in this "
             f"folder regenerates the tables{compared}.\n\n")
    markdown = intro + "\n\n".join(sections) + "\n"
    atomic_save_text(output / f"{stem}.md", markdown)
    return summaries, markdown


#: The fields of ``predictions_test.npz`` a published study keeps: what the paired
#: bootstrap reads (the landmarks, most of the file, are left behind).
PUBLISHED_PREDICTION_FIELDS = ("probs", "labels", "aus", "frame_ids", "threshold", "subjects")
#: The files of a finished run a published study copies whole.
PUBLISHED_RUN_FILES = ("results.json", ADJACENCY_FILE)


def publish_study(output: Path, dest: Path, datasets: Sequence[str], runs: Sequence[PlannedRun],
                  log: Log = console, reference: str = REFERENCE_SETTING) -> list[PlannedRun]:
    """Copy what the report needs of every finished run to ``dest`` (the same
    ``<DATASET>/<setting>-seed<s>/`` layout): ``results.json``, the adjacency agreement
    and ``predictions_test.npz`` with only :data:`PUBLISHED_PREDICTION_FIELDS`; then write
    the report there (:func:`write_report`), whose results blocks name those copies, so a
    repository can commit ``dest`` and regenerate its tables with
    ``python -m mgrr_pyg.train.report``. Returns the published runs (``run_dir`` in ``dest``).
    Everything is checked before anything is written."""
    from mgrr_pyg.train.metrics import load_predictions

    output, dest = Path(output), Path(dest)
    if dest.resolve() == output.resolve():
        raise ValueError(f"publish: expected another folder than the study's output {output}, found {dest}")
    finished = [r for r in runs if (r.run_dir / "results.json").exists()
                and (r.run_dir / "predictions_test.npz").exists()]
    if not finished:
        raise ValueError(f"publish: no finished run in {output} (a run is finished when its folder holds "
                         "results.json and predictions_test.npz)")
    copies = []
    for run in finished:
        data = load_predictions(run.run_dir / "predictions_test.npz")
        missing = [k for k in ("probs", "labels", "aus", "frame_ids") if k not in data]
        if missing:
            raise ValueError(f"publish: {run.run_dir / 'predictions_test.npz'}: missing {missing}; expected "
                             "the predictions_test.npz a run writes")
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **{k: data[k] for k in PUBLISHED_PREDICTION_FIELDS if k in data})
        files = {name: (run.run_dir / name).read_bytes() for name in PUBLISHED_RUN_FILES
                 if (run.run_dir / name).exists()}
        copies.append((run, buffer.getvalue(), files))
    published = []
    for run, predictions, files in copies:
        target = run_folder(dest, run.dataset, run.setting, run.seed)
        for name, data in files.items():
            atomic_save_bytes(target / name, data)
        atomic_save_bytes(target / "predictions_test.npz", predictions)
        published.append(dataclasses.replace(run, run_dir=target))
    log(f"published {len(published)} finished run(s) of {output} in {dest}")
    write_report(dest, datasets, published, log, reference=reference)
    return published


def run_study(configs: Mapping[str, TrainConfig], settings: Sequence[str] = DEFAULT_SETTINGS,
              seeds: Sequence[int] = DEFAULT_SEEDS, output: Path = Path("runs/ablation"),
              jobs: Optional[int] = None, threads: Optional[int] = None, runner: Runner = train_run,
              report_only: bool = False, log: Log = console,
              reference: str = REFERENCE_SETTING, publish: Optional[Path] = None) -> StudyResult:
    """Check the budget, run what is not finished (:func:`execute`), write the report
    (every setting compared with ``reference``, one of ``settings``: :func:`write_report`);
    ``publish``: then copy the finished runs' report files there (:func:`publish_study`)."""
    output = Path(output)
    configs = {dataset: config.replace(progress=False) for dataset, config in configs.items()}
    runs = plan_study(configs, settings, seeds, output)
    check_reference(reference, list(dict.fromkeys(settings)))  # before anything runs
    if publish is not None and Path(publish).resolve() == output.resolve():
        raise ValueError(f"publish: expected another folder than the study's output {output}, found {publish}")
    for dataset, config in configs.items():
        if check_study_budget(output / dataset, study_budget(config)):
            log(f"{dataset}: {output / dataset} holds this budget already; finished runs are skipped")
    outcomes = [] if report_only else execute(runs, jobs, threads, runner, log)
    summaries, markdown = write_report(output, list(configs), runs, log, reference=reference)
    log("\n" + markdown)
    stem = report_stem(reference)
    log(f"written: {output}/{stem}.md and, per dataset, <dataset>/{stem}.md, {stem}.json")
    if publish is not None:
        publish_study(output, Path(publish), list(configs), runs, log, reference=reference)
        log(f"published: {Path(publish)}/{stem}.md and, per dataset, <dataset>/{stem}.md, {stem}.json")
    return StudyResult(output, outcomes, summaries, markdown)


def run_ablation(config, settings: Sequence[str] = DEFAULT_SETTINGS, seeds: Sequence[int] = DEFAULT_SEEDS,
                 log: Log = console, jobs: int = 1, threads: Optional[int] = None, runner: Runner = train_run,
                 report_only: bool = False, reference: str = REFERENCE_SETTING) -> StudyResult:
    """The study of :func:`run_study` from one budget: a :class:`TrainConfig` (its dataset)
    or a dict dataset -> config; the output folder is the (first) config's ``output``,
    else ``runs/ablation``. ``jobs`` defaults to 1 here (in this process)."""
    configs = {config.dataset: config} if isinstance(config, TrainConfig) else dict(config)
    if not configs:
        raise ValueError("config: expected a TrainConfig or a dict dataset -> TrainConfig, found none")
    first = next(iter(configs.values()))
    output = Path(first.output) if first.output else Path("runs/ablation")
    return run_study(configs, settings, seeds, output, jobs=jobs, threads=threads, runner=runner,
                     report_only=report_only, log=log, reference=reference)


__all__ = ["BudgetMismatchError", "DEFAULT_SEEDS", "DEFAULT_SETTINGS", "NOT_BUDGET_KEYS", "PlannedRun",
           "REFERENCE_SETTING", "RunOutcome", "SETTING_DESCRIPTIONS", "SETTING_ORDER", "StudyResult",
           "adjacency_hook", "budget_of", "check_reference", "check_study_budget", "execute", "paired_runs",
           "parse_datasets", "plan_study", "publish_study", "PUBLISHED_PREDICTION_FIELDS", "render_ablation_block", "run_ablation", "render_summary",
           "report_stem", "run_state", "run_study", "setting_rank", "study_budget", "summarise", "train_run",
           "write_report"]
