"""The real aligned landmarks of ``tests/data/reference_landmarks.json``: the one reader.

The file keeps the example lists published with JAA-Net as they are (provenance and
licence are inside it, layout in ``docs/protocol.md``): ``BP4D`` and ``DISFA`` records
with ``path``, ``landmarks`` and ``biocular_squared``, and ``BP4D_more`` records with
``landmarks`` and ``AUoccur``. Test modules in any folder import it by this name
(pytest puts ``tests/`` on the path for ``tests/conftest.py``).
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

REFERENCE_FILE = Path(__file__).resolve().parent / "data" / "reference_landmarks.json"

#: The record groups of the file, in the order :func:`reference_faces` stacks them.
GROUPS = ("BP4D", "DISFA", "BP4D_more")


@lru_cache(maxsize=1)
def _content() -> str:
    return REFERENCE_FILE.read_text()


def reference_data() -> dict:
    """The whole file (a fresh copy each call, so a test cannot change another's data)."""
    return json.loads(_content())


def reference_faces() -> np.ndarray:
    """``[11, 49, 2]`` float64: every face of the file, BP4D, DISFA, then BP4D_more."""
    data = reference_data()
    faces = [record["landmarks"] for group in GROUPS for record in data[group]]
    return np.asarray(faces, dtype=np.float64).reshape(-1, 49, 2)
