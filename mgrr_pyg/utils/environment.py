"""What a run ran on, for its ``results.json``: library versions, the CPU threads in
force, the machine, the code's git commit, the command line and a digest of the
prepared data.

Why: the same code and seed give different figures when any of these differ. Thread
count changes the order of floating-point reductions (a run is bit-reproducible only at
the same intra-op thread count); library versions change kernels and image codecs; the
data digest tells whether two runs trained on the same pixels at all. A figure in the
README is only as reproducible as the record of these conditions next to it.

:func:`run_environment` collects everything; each part has its own small function so a
missing piece (no git, no ``/proc/cpuinfo``) only blanks that piece.
"""
from __future__ import annotations

import hashlib
import os
import platform
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Optional, Sequence

#: Distributions whose versions decide a run's figures (import name differs for some).
PACKAGES = ("torch", "torch-geometric", "numpy", "Pillow", "scikit-learn", "scikit-image", "scipy")


def package_versions() -> dict:
    """Python and :data:`PACKAGES` versions (``None``: not installed), plus the JPEG
    codec Pillow was built with (``libjpeg_turbo``, from ``PIL.features``)."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    try:
        from PIL import features

        versions["libjpeg_turbo"] = features.version("libjpeg_turbo")
    except (ImportError, ValueError):  # Pillow missing, or a Pillow without that feature
        versions["libjpeg_turbo"] = None
    return versions


#: CPU vector extensions that decide which kernels torch, oneDNN and MKL run (and so the
#: rounding of a run: the same code and threads on an AVX2 and an AVX-512 machine differ).
VECTOR_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")


def _cpuinfo_field(name: str) -> Optional[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip().lower() == name:
                return value.strip()
    except OSError:
        pass
    return None


def cpu_model() -> Optional[str]:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else ``platform.processor()``)."""
    return _cpuinfo_field("model name") or platform.processor() or None


def cpu_vector_extensions() -> Optional[list]:
    """Which of :data:`VECTOR_FLAGS` the CPU has (``/proc/cpuinfo``; ``None`` elsewhere)."""
    flags = _cpuinfo_field("flags")
    return None if flags is None else [flag for flag in VECTOR_FLAGS if flag in flags.split()]


def machine() -> dict:
    """CPU model, vector extensions and the kernels torch dispatches to, CPU count, the
    load when the record was made, platform, accelerator."""
    try:
        load = [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        load = None
    accelerator = capability = None
    if "torch" in sys.modules:
        import torch

        capability = torch.backends.cpu.get_cpu_capability()  # ATen's kernels: DEFAULT, AVX2, AVX512...
        if torch.cuda.is_available():
            accelerator = torch.cuda.get_device_name(torch.cuda.current_device())
    return {
        "cpu": cpu_model(),
        "cpu_vector_extensions": cpu_vector_extensions(),
        "torch_cpu_capability": capability,
        "logical_cpus": os.cpu_count(),
        "load_average_1_5_15_min": load,
        "platform": platform.platform(),
        "accelerator": accelerator,
    }


def git_revision(package_dir: Optional[Path] = None) -> Optional[dict]:
    """``{"commit", "dirty"}`` of the git checkout holding this package (``dirty``:
    tracked files differ from the commit), or ``None`` when the package is not in a git
    checkout (an installed copy) or git is not available."""
    package_dir = Path(package_dir) if package_dir else Path(__file__).resolve().parents[1]
    checkout = package_dir.parent

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(checkout), *args], capture_output=True, text=True,
                              check=True, timeout=30).stdout.strip()

    try:
        if Path(git("rev-parse", "--show-toplevel")).resolve() != checkout.resolve():
            return None  # some other repository encloses an installed copy
        return {"commit": git("rev-parse", "HEAD"),
                "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
    except (OSError, subprocess.SubprocessError):
        return None


def command_line(argv: Optional[Sequence[str]] = None) -> str:
    """The command as a user would type it: ``python examples/train_bp4d.py --fold 2``
    for a script, ``mgrr-train --fold 2`` for an entry point."""
    argv = list(sys.argv if argv is None else argv)
    if not argv or argv[0] in ("", "-c", "-"):
        return shlex.join(["python", *argv])
    program = argv[0]
    if program.endswith(".py"):
        return shlex.join(["python", program, *argv[1:]])
    return shlex.join([Path(program).name, *argv[1:]])


def thread_record() -> dict:
    """The CPU threads in force (:func:`mgrr_pyg.utils.threads.thread_settings`)."""
    from mgrr_pyg.utils.threads import thread_settings

    return thread_settings()


def prepared_data_digest(root) -> Optional[str]:
    """SHA-1 over the prepared list files (``*.txt``) and every file under ``images/``
    (relative path and bytes, in sorted order) of a prepared folder; ``None`` when
    ``root`` is not a folder. Two runs with the same digest trained and tested on the
    same pixels, labels and landmarks."""
    root = Path(root) if root else None
    if root is None or not root.is_dir():
        return None
    files = sorted(root.glob("*.txt")) + sorted(p for p in (root / "images").rglob("*") if p.is_file())
    digest = hashlib.sha1()
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha1(path.read_bytes()).digest())
    return digest.hexdigest()


def run_environment(argv: Optional[Sequence[str]] = None) -> dict:
    """Everything above except the data digest, as plain JSON types."""
    return {
        "command": command_line(argv),
        "versions": package_versions(),
        "threads": thread_record(),
        "machine": machine(),
        "git": git_revision(),
    }


__all__ = ["PACKAGES", "VECTOR_FLAGS", "command_line", "cpu_model", "cpu_vector_extensions", "git_revision",
           "machine", "package_versions", "prepared_data_digest", "run_environment", "thread_record"]
