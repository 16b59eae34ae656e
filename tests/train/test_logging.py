"""One console Log: console prints each message at once, main_process_only keeps a
distributed run's messages to rank 0, and every reporter of the training package prints
through it (no print helper of its own)."""
import ast
from pathlib import Path

import pytest

import mgrr_pyg.train
from mgrr_pyg.train.logging import console, main_process_only, silent


def test_console_prints_the_message_and_flushes(capsys, monkeypatch):
    flushed = []
    monkeypatch.setattr("sys.stdout.flush", lambda: flushed.append(True), raising=False)
    console("fold 1: train on parts 2+3\n-> this run")
    assert capsys.readouterr().out == "fold 1: train on parts 2+3\n-> this run\n"
    assert flushed  # seen before a long step, not when a buffer fills


def test_only_the_main_process_passes_messages_on():
    seen = []
    main_process_only(seen.append, is_main=True)("rank 0 says")
    main_process_only(seen.append, is_main=False)("rank 1 says")
    assert seen == ["rank 0 says"]
    assert main_process_only(seen.append, is_main=False) is silent


def _print_calls(tree):
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name) and node.func.id == "print"]


@pytest.mark.parametrize("module", ["pipeline", "data_sources", "fold_frames", "outputs",
                                    "runners", "trainer"])
def test_the_run_prints_only_through_the_log(module):
    """A stray print would be printed by every process of a distributed run and could not
    be redirected by the caller's ``log``."""
    source = Path(mgrr_pyg.train.__file__).parent / f"{module}.py"
    assert _print_calls(ast.parse(source.read_text())) == [], f"{source} calls print()"
