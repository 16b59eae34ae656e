"""Training logs: the console messages, a CSV log always, TensorBoard when installed,
tqdm progress bars.

Console messages (what a run is doing: the fold, the data, the model, a resume, the
results) go through a :data:`Log`, a function of one message: :func:`console` prints it,
and :func:`main_process_only` silences the other processes of a distributed run, so
each message is printed once. The functions and classes that report take a ``log``
(default :func:`console`); a caller that wants the messages elsewhere (a test, a
notebook) passes its own.

The CSV log has one row per logged optimiser step (``log.csv``: epoch, step,
global_step, the loss terms, lr, images/s) and one row per epoch (``epochs.csv``).
On resume the rows written after the checkpoint being resumed from are dropped, so
the log reads as one uninterrupted run.
"""
from __future__ import annotations

import csv
import io
import math
import sys
import warnings
from pathlib import Path
from typing import Callable, Optional, Sequence

from mgrr_pyg.utils.io import atomic_save_text

#: Where console messages go: a function of one message (one or more lines of text).
Log = Callable[[str], None]


def console(message: str) -> None:
    """The default :data:`Log`: print ``message`` to stdout at once (``flush``, so it
    is seen before a long step and in the right order with the progress bars)."""
    print(message, flush=True)


def silent(message: str) -> None:
    """A :data:`Log` that drops every message."""


def main_process_only(log: Log, is_main: bool) -> Log:
    """``log`` on the main process (rank 0, or the only process), :func:`silent` on the
    others, so that a message of a distributed run is printed once."""
    return log if is_main else silent


class CSVLogger:
    """Append dict rows to a CSV file; the columns are those of the first row. A later row
    may carry fewer keys (left blank) or new ones: the file is then rewritten, atomically,
    with the new columns appended to the header and left blank in the earlier rows (a
    resumed run that turns on ``--curve-frames`` adds its columns this way)."""

    def __init__(self, path, fieldnames: Optional[Sequence[str]] = None) -> None:
        self.path = Path(path)
        self.fieldnames = list(fieldnames) if fieldnames else None
        if self.fieldnames is None and self.path.exists() and self.path.stat().st_size:
            with open(self.path, newline="") as handle:
                self.fieldnames = next(csv.reader(handle), None)

    def log(self, row: dict) -> None:
        if self.fieldnames is None:
            self.fieldnames = list(row)
        extra = [k for k in row if k not in self.fieldnames]
        if extra:
            self._widen(extra)
        new = not self.path.exists() or self.path.stat().st_size == 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.fieldnames)
            if new:
                writer.writeheader()
            writer.writerow({k: _fmt(row.get(k)) for k in self.fieldnames})

    def _widen(self, columns: Sequence[str]) -> None:
        """Append ``columns`` to the header, rewriting the rows already written."""
        rows = self.read()
        self.fieldnames = self.fieldnames + list(columns)
        if not rows:
            return
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.fieldnames, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        atomic_save_text(self.path, buffer.getvalue())

    def truncate_after(self, key: str, value: float) -> None:
        """Drop rows whose ``key`` column is greater than ``value`` (resume)."""
        if not self.path.exists():
            return
        with open(self.path, newline="") as handle:
            rows = list(csv.DictReader(handle))
            fieldnames = rows and list(rows[0].keys())
        if not rows:
            return
        kept = [r for r in rows if r.get(key) in (None, "") or float(r[key]) <= value]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=fieldnames, lineterminator="\n")
        writer.writeheader()
        writer.writerows(kept)
        atomic_save_text(self.path, buffer.getvalue())

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        with open(self.path, newline="") as handle:
            return list(csv.DictReader(handle))


def _fmt(value):
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return "" if value is None else value


class TensorBoardLogger:
    """Scalars to TensorBoard if ``tensorboard`` is installed (optional extra);
    otherwise a no-op that says so once."""

    def __init__(self, log_dir, enabled: bool = True) -> None:
        self.writer = None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter  # lazy: optional dependency
        except Exception:  # ImportError, or tensorboard's own import-time errors
            return
        try:
            self.writer = SummaryWriter(log_dir=str(log_dir))
        except Exception as err:
            warnings.warn(f"TensorBoard logging disabled: {err}", stacklevel=2)

    @property
    def enabled(self) -> bool:
        return self.writer is not None

    def log(self, scalars: dict, step: int, prefix: str = "") -> None:
        if self.writer is None:
            return
        for key, value in scalars.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                self.writer.add_scalar(f"{prefix}{key}", value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def progress_bar(total: int, desc: str, enabled: bool = True, initial: int = 0):
    """A tqdm bar (to stderr) or a silent stand-in with the same methods."""
    if enabled:
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, initial=initial, dynamic_ncols=True, leave=True,
                    file=sys.stderr, unit="step")
    return _NoBar()


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, *args, **kwargs) -> None:
        pass

    def close(self) -> None:
        pass


__all__ = ["CSVLogger", "Log", "TensorBoardLogger", "console", "main_process_only", "progress_bar",
           "silent"]
