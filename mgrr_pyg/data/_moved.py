"""The data modules' old names, kept importable: an old module forwards each name to the
module that now holds it, with a :class:`DeprecationWarning` naming the new place."""
from __future__ import annotations

import importlib
import warnings
from typing import Any, Callable


def forward_to(old: str, new: str, moved: dict[str, str] | None = None
               ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for module ``old``, whose names now live in module
    ``new``; ``moved`` maps an old name that is now elsewhere or called otherwise to its
    full new name (``"mgrr_pyg.data.prepared_lists.PREPARED_MANIFEST"``)."""
    moved = dict(moved or {})

    def __getattr__(name: str) -> Any:
        module, attribute = moved[name].rsplit(".", 1) if name in moved else (new, name)
        target = importlib.import_module(module)
        if name.startswith("__") or not hasattr(target, attribute):
            raise AttributeError(f"module {old!r} has no attribute {name!r}")
        warnings.warn(f"{old}.{name} is deprecated: the module was renamed, use "
                      f"{module}.{attribute}", DeprecationWarning, stacklevel=2)
        return getattr(target, attribute)

    def __dir__() -> list[str]:
        return sorted(set(dir(importlib.import_module(new))) | set(moved))

    return __getattr__, __dir__
