"""What a run records about where it ran: git commit, command line, data digest, CPU."""
from pathlib import Path

from mgrr_pyg.utils.environment import (
    command_line,
    cpu_vector_extensions,
    git_revision,
    prepared_data_digest,
)


def test_git_revision_outside_a_checkout_is_none_and_commands_read_as_typed(tmp_path):
    (tmp_path / "mgrr_pyg").mkdir()
    assert git_revision(tmp_path / "mgrr_pyg") is None
    assert command_line(["examples/train_bp4d.py", "--fold", "2"]) == "python examples/train_bp4d.py --fold 2"
    assert command_line(["/venv/bin/mgrr-train", "--set", "a=1 2"]) == "mgrr-train --set 'a=1 2'"


def test_prepared_digest_follows_images_and_lists_only(tmp_path):
    (tmp_path / "images" / "S1").mkdir(parents=True)
    (tmp_path / "images" / "S1" / "0.jpg").write_bytes(b"pixels")
    (tmp_path / "BP4D_part1_path.txt").write_text("S1/0.jpg\n")
    first = prepared_data_digest(tmp_path)
    (tmp_path / "prepare.json").write_text('{"source": "/somewhere/else"}')  # machine-specific
    assert prepared_data_digest(tmp_path) == first
    (tmp_path / "images" / "S1" / "0.jpg").write_bytes(b"pixelz")
    assert prepared_data_digest(tmp_path) != first
    assert prepared_data_digest(tmp_path / "absent") is None


def test_vector_extensions_are_the_cpus_flags():
    flags = None
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        line = next((l for l in cpuinfo.read_text().splitlines() if l.startswith("flags")), None)
        flags = None if line is None else set(line.split(":", 1)[1].split())
    found = cpu_vector_extensions()
    if flags is None:
        assert found is None
    else:
        assert set(found) == flags & {"avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16",
                                      "amx_tile", "amx_bf16"}
