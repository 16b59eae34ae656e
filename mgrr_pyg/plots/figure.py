"""The one place a figure becomes a PNG file: every ``mgrr-plot`` picture and the fold
runner's box plot go through :func:`finish_figure`."""
from __future__ import annotations

import io
from pathlib import Path

from mgrr_pyg.utils.io import atomic_save_bytes


def finish_figure(fig, path, tight: bool = False, dpi: int = 110):
    """Return ``fig`` when ``path`` is None, else write it as a PNG to ``path`` (atomically:
    an interrupted write leaves no partial file) and return the path; ``tight``: margins
    cut to the drawing."""
    if path is None:
        return fig
    buffer = io.BytesIO()
    if tight:
        fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", pad_inches=0.1)
    else:
        fig.savefig(buffer, format="png", dpi=dpi)
    path = Path(path)
    atomic_save_bytes(path, buffer.getvalue())
    return path


__all__ = ["finish_figure"]
