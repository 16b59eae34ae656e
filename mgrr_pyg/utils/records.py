"""Records as plain values: one conversion to built-in Python types and one comparison of
two configuration dicts.

:func:`plain` is what every record of this package goes through before it is written
(``config.json``, ``results.json``, the synthetic-data markers, the training
configuration inside a checkpoint): JSON can write the result and
``torch.load(..., weights_only=True)`` can read it back. :func:`config_differences`
says which keys of two such records differ, for the errors that refuse to mix them
(resuming a run with another training configuration, regenerating synthetic data into
a folder made with another generator configuration).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Collection, Mapping

import numpy as np

#: Stands for a key that one of the two records of :func:`config_differences` lacks (a
#: key that is there with the value ``None`` is another thing).
MISSING = "<missing>"


def plain(value: Any) -> Any:
    """``value`` as built-in types that JSON writes and ``weights_only`` loads.

    Dicts keep their order with ``str`` keys; lists and tuples become lists; NumPy
    scalars become ``bool`` / ``int`` / ``float`` and arrays nested lists; a ``Path``
    becomes its ``str``; ``str``, ``int``, ``float``, ``bool`` and ``None`` stay as they
    are (a ``float`` NaN included); anything else becomes its ``str()``, so a record is
    always writable.
    """
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def config_differences(a: Mapping[str, Any], b: Mapping[str, Any],
                       ignore: Collection[str] = ()) -> list[str]:
    """The keys whose values differ between two configuration dicts, sorted, as
    ``"key: a_value != b_value"`` lines (``repr`` of each value; :data:`MISSING` where
    a record lacks the key), skipping the keys in ``ignore``."""
    lines = []
    for key in sorted(set(a) | set(b)):
        if key in ignore:
            continue
        value_a, value_b = a.get(key, MISSING), b.get(key, MISSING)
        if value_a != value_b:
            lines.append(f"{key}: {value_a!r} != {value_b!r}")
    return lines


__all__ = ["MISSING", "config_differences", "plain"]
