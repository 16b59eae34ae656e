"""The CPU thread policy: the OpenMP wait-policy default set before torch loads, the
intra-op thread count the command line applies, and what is reported as in force.
(Throughput itself is measured in bench/bench_contention.py, never here.)"""
import json
import os
import subprocess
import sys

import pytest
import torch

from mgrr_pyg.utils import threads

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


@pytest.fixture
def restore_threads():
    previous = torch.get_num_threads()
    yield
    torch.set_num_threads(previous)


def run_python(code: str, **env_vars) -> str:
    """Run ``code`` in a fresh interpreter whose environment has no threading variables
    except ``env_vars``; return its stdout."""
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    env.update(env_vars)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1]


# -- the wait policy ------------------------------------------------------------------------
def test_passive_wait_is_set_when_absent_and_torch_not_loaded():
    environ = {}
    assert threads.prefer_passive_openmp_wait(environ, torch_imported=False)
    assert environ == {"OMP_WAIT_POLICY": "PASSIVE"}


@pytest.mark.parametrize("user_env", [{"OMP_WAIT_POLICY": "ACTIVE"}, {"OMP_WAIT_POLICY": "passive"},
                                      {"GOMP_SPINCOUNT": "10000"}])
def test_a_wait_policy_the_user_chose_is_left_alone(user_env):
    environ = dict(user_env)
    assert not threads.prefer_passive_openmp_wait(environ, torch_imported=False)
    assert environ == user_env


def test_nothing_is_set_once_torch_is_loaded():
    # libgomp has read its environment already: setting the variable would only mislead
    environ = {}
    assert not threads.prefer_passive_openmp_wait(environ, torch_imported=True)
    assert environ == {}


REPORT = ("import os, json{first}; from mgrr_pyg.utils.threads import thread_settings; "
          "print(json.dumps([os.environ.get('OMP_WAIT_POLICY'), thread_settings()['omp_wait_policy']]))")


def test_importing_the_package_first_makes_openmp_wait_passive():
    assert json.loads(run_python(REPORT.format(first="; import mgrr_pyg, torch"))) == ["PASSIVE", "PASSIVE"]


def test_the_users_wait_policy_wins_and_is_reported():
    assert json.loads(run_python(REPORT.format(first="; import mgrr_pyg, torch"), OMP_WAIT_POLICY="ACTIVE")) \
        == ["ACTIVE", "ACTIVE"]


def test_torch_imported_first_keeps_libgomps_default_and_says_so():
    assert json.loads(run_python(REPORT.format(first="; import torch, mgrr_pyg"))) == \
        [None, "default (spin, then sleep)"]


def test_a_spin_count_seen_by_openmp_is_reported(monkeypatch):
    monkeypatch.setattr(threads, "_wait_policy_at_torch_import",
                        {"OMP_WAIT_POLICY": None, "GOMP_SPINCOUNT": "5000"})
    assert threads.thread_settings()["omp_wait_policy"] == "GOMP_SPINCOUNT=5000"


def test_a_variable_changed_after_process_start_with_torch_first_is_reported_unknown(monkeypatch):
    # torch came first (nothing recorded) and the variable now differs from the process's
    # start environment: what libgomp read cannot be known
    monkeypatch.setattr(threads, "_wait_policy_at_torch_import", None)
    monkeypatch.setattr(threads, "_start_environment", lambda names: {n: None for n in names})
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    assert threads.thread_settings()["omp_wait_policy"] == "unknown"
    monkeypatch.delenv("OMP_WAIT_POLICY")
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    assert threads.thread_settings()["omp_wait_policy"] == "default (spin, then sleep)"


def test_the_wait_policy_changes_no_numerics():
    # two training steps of the tiny model at 2 threads: passive waiting (the package's
    # default) and libgomp's default spinning (GOMP_SPINCOUNT=300000 is its default count;
    # setting it keeps the package from choosing PASSIVE) give the same bits
    code = (
        "import mgrr_pyg, torch; torch.set_num_threads(2); torch.manual_seed(0)\n"
        "from mgrr_pyg.model import MGRRLoss, create_model\n"
        "from mgrr_pyg.utils.threads import thread_settings\n"
        "model = create_model('tiny'); loss_fn = MGRRLoss(torch.ones(12))\n"
        "opt = torch.optim.AdamW(model.parameters(), lr=1e-3)\n"
        "g = torch.Generator().manual_seed(1)\n"
        "x = torch.rand(2, 3, 176, 176, generator=g) * 2 - 1\n"
        "y = (torch.rand(2, 12, generator=g) < 0.3).float()\n"
        "lm = 40 + torch.rand(2, 49, 2, generator=g) * 96\n"
        "for _ in range(2):\n"
        "    loss = loss_fn(model(x), y, torch.ones_like(y, dtype=torch.bool), lm, torch.full((2,), 60.0))['total']\n"
        "    opt.zero_grad(); loss.backward(); opt.step()\n"
        "total = sum(p.detach().double().sum() for p in model.parameters())\n"
        "print(thread_settings()['omp_wait_policy'], float(loss).hex(), float(total).hex())\n"
    )
    passive = run_python(code).split()
    spinning = run_python(code, GOMP_SPINCOUNT="300000").split()
    assert passive[0] == "PASSIVE" and spinning[0] == "GOMP_SPINCOUNT=300000"
    assert passive[1:] == spinning[1:]


# -- the intra-op thread count --------------------------------------------------------------
@pytest.mark.parametrize("cpus, expected", [(1, 1), (2, 1), (3, 1), (4, 2), (6, 3), (16, 8), (64, 32)])
def test_default_threads_are_half_the_cpus_at_least_one(cpus, expected):
    assert threads.default_intra_op_threads(cpus) == expected


def test_apply_uses_the_default_from_the_cpu_count(monkeypatch, restore_threads):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "usable_cpus", lambda: 6)
    settings = threads.apply_thread_policy()
    assert torch.get_num_threads() == 3
    assert settings["intra_op_threads"] == 3 and settings["threads_source"] == "default: half of 6 CPUs"


def test_apply_explicit_threads_win_over_omp_num_threads(monkeypatch, restore_threads):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    settings = threads.apply_thread_policy(3)
    assert torch.get_num_threads() == 3
    assert settings["intra_op_threads"] == 3 and settings["threads_source"] == "--threads"
    assert settings["env"]["OMP_NUM_THREADS"] == "1"


def test_apply_leaves_the_users_omp_num_threads(monkeypatch, restore_threads):
    torch.set_num_threads(3)  # what torch would have read from OMP_NUM_THREADS=3 at import
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.setattr(threads, "usable_cpus", lambda: 2)
    settings = threads.apply_thread_policy()
    assert torch.get_num_threads() == 3 and settings["threads_source"] == "OMP_NUM_THREADS"


@pytest.mark.parametrize("bad", [0, -2, 1.5, "2", True])
def test_apply_refuses_a_bad_thread_count_and_changes_nothing(bad, restore_threads):
    torch.set_num_threads(2)
    with pytest.raises(ValueError, match="threads: expected a whole number >= 1"):
        threads.apply_thread_policy(bad)
    assert torch.get_num_threads() == 2


def test_settings_report_what_torch_and_the_environment_hold(monkeypatch, restore_threads):
    monkeypatch.setenv("MKL_NUM_THREADS", "4")
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    torch.set_num_threads(2)
    settings = threads.thread_settings()
    assert settings["intra_op_threads"] == 2
    assert settings["inter_op_threads"] == torch.get_num_interop_threads()
    assert settings["usable_cpus"] == len(os.sched_getaffinity(0))
    assert settings["env"]["MKL_NUM_THREADS"] == "4" and settings["env"]["GOMP_SPINCOUNT"] is None
    assert set(settings["env"]) == set(THREAD_VARS)
    json.dumps(settings)  # goes into results.json as it is


# -- the command line -----------------------------------------------------------------------
def _cli_threads(monkeypatch, capsys, argv):
    """Run ``mgrr-train argv`` with the training replaced by a probe of the thread count;
    return (threads inside the run, console output)."""
    from mgrr_pyg.train import cli, pipeline

    seen = {}
    monkeypatch.setattr(pipeline, "run_training", lambda config, dist_ctx=None: seen.setdefault(
        "threads", torch.get_num_threads()))
    cli.main(argv + ["--device", "cpu"], dataset="BP4D", prog="mgrr-train")
    return seen["threads"], capsys.readouterr().out


def test_cli_applies_threads_and_prints_them_once(monkeypatch, capsys, restore_threads):
    monkeypatch.delenv("RANK", raising=False)
    used, out = _cli_threads(monkeypatch, capsys, ["--threads", "3"])
    assert used == 3
    assert out.count("CPU threads:") == 1 and "CPU threads: 3 intra-op (--threads" in out


def test_cli_default_is_the_policy(monkeypatch, capsys, restore_threads):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.setattr(threads, "usable_cpus", lambda: 4)
    torch.set_num_threads(4)
    used, out = _cli_threads(monkeypatch, capsys, [])
    assert used == 2 and "CPU threads: 2 intra-op (default: half of 4 CPUs" in out


def test_cli_rejects_a_zero_thread_count(capsys):
    from mgrr_pyg.train.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--threads", "0"], dataset="BP4D")
    assert exit_info.value.code == 2 and "--threads" in capsys.readouterr().err
