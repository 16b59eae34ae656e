"""Resumable, atomic generation: a re-run skips complete sequences and redoes the rest,
a crash leaves no half-written file, and a folder of another configuration is refused."""
import itertools
import threading
from pathlib import Path

import pytest

from mgrr_pyg.data.synthetic import generate
from mgrr_pyg.data.synthetic import writer

SMALL = dict(dataset="BP4D", preset="tiny", subjects=["F001", "F003"], tasks=["T1", "T2"],
             frames_per_task=3, progress=False, workers=1)


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("reference")
    generate(root, seed=0, **SMALL)
    return snapshot(root)


def test_rerun_skips_complete_sequences_and_redoes_broken_ones(tmp_path, reference):
    root = tmp_path / "run"
    first = generate(root, seed=0, **SMALL)
    assert first["generated_sequences"] == 4 and first["skipped_sequences"] == 0
    (root / ".synth_done" / "F001_T2.json").unlink()  # interrupted before its marker
    next((root / "F003" / "T1").glob("*.jpg")).unlink()  # a file lost after completion
    stale = root / "F001" / "T2" / ".1234.jpg.x7q.tmp"  # what a killed writer leaves
    stale.write_bytes(b"partial")
    second = generate(root, seed=0, **SMALL)
    assert second["generated_sequences"] == 2 and second["skipped_sequences"] == 2
    assert second["generated_frames"] == 6
    assert not stale.exists()
    assert snapshot(root) == reference
    third = generate(root, seed=0, **SMALL)
    assert third["generated_sequences"] == 0 and third["generated_frames"] == 0


def test_crash_mid_sequence_leaves_only_complete_files_and_resume_finishes(tmp_path, monkeypatch, reference):
    root = tmp_path / "crash"
    real_save = writer.atomic_save_bytes
    calls = itertools.count()
    lock = threading.Lock()

    def failing_save(path, data):
        with lock:
            n = next(calls)
        if n == 7:  # the second frame of the third sequence
            raise OSError(28, "No space left on device")
        real_save(path, data)

    monkeypatch.setattr(writer, "atomic_save_bytes", failing_save)
    with pytest.raises(OSError, match="No space left"):
        generate(root, seed=0, **SMALL)
    files = snapshot(root)
    assert not any(Path(name).name.endswith(".tmp") for name in files)
    markers = [name for name in files if name.startswith(".synth_done/")]
    assert len(markers) == 2  # the two sequences finished before the crash
    for name, data in files.items():  # whatever is there is complete and final
        assert reference[name] == data, name
    monkeypatch.setattr(writer, "atomic_save_bytes", real_save)
    resumed = generate(root, seed=0, **SMALL)
    assert resumed["generated_sequences"] == 2 and resumed["skipped_sequences"] == 2
    assert snapshot(root) == reference


def test_another_seed_into_the_same_folder_is_an_error(tmp_path):
    root = tmp_path / "seeded"
    generate(root, seed=0, **{**SMALL, "tasks": ["T1"], "subjects": ["F001"]})
    with pytest.raises(ValueError, match=r"another configuration.*seed: 0 != 1"):
        generate(root, seed=1, **{**SMALL, "tasks": ["T1"], "subjects": ["F001"]})
    with pytest.raises(ValueError, match="frames_per_task: 3 != 4"):
        generate(root, seed=0, **{**SMALL, "tasks": ["T1"], "subjects": ["F001"], "frames_per_task": 4})


def test_a_folder_with_other_data_is_refused(tmp_path):
    (tmp_path / "F001").mkdir()
    (tmp_path / "F001" / "mine.txt").write_text("not synthetic")
    with pytest.raises(ValueError, match="expected an empty or new folder"):
        generate(tmp_path, seed=0, **SMALL)


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(ValueError, match="F999"):
        generate(tmp_path / "a", subjects=["F999"], preset="tiny", progress=False)
    with pytest.raises(ValueError, match="tasks"):
        generate(tmp_path / "b", tasks=["T9"], preset="tiny", progress=False)
    with pytest.raises(ValueError, match="preset"):
        generate(tmp_path / "c", preset="huge", progress=False)
    with pytest.raises(ValueError, match="workers"):
        generate(tmp_path / "d", preset="tiny", workers=-1, progress=False)
