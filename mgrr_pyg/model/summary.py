"""Parameter counts per module, as a dict and as a printable table."""
from __future__ import annotations

from torch import nn


def parameter_counts(model: nn.Module, depth: int = 2) -> dict[str, int]:
    """Trainable parameter count of every submodule down to ``depth`` levels of
    dotted names (``"layers.0.pixel"`` is depth 3), plus ``"total"``.
    Parameters shared between modules are counted once per module that holds them."""
    counts: dict[str, int] = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        parts = name.split(".")[:-1]
        for level in range(1, min(depth, len(parts)) + 1):
            key = ".".join(parts[:level])
            counts[key] = counts.get(key, 0) + parameter.numel()
        if not parts:  # a parameter directly on the model
            counts["(own)"] = counts.get("(own)", 0) + parameter.numel()
    counts["total"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return counts


def parameter_summary(model: nn.Module, depth: int = 3) -> str:
    """A table of :func:`parameter_counts` (module, parameters, share of the total)."""
    counts = parameter_counts(model, depth)
    total = counts["total"] or 1
    width = max(len(name) for name in counts) + 2
    lines = [f"{'module':<{width}}{'parameters':>14}{'share':>9}"]
    for name, count in counts.items():
        if name == "total":
            continue
        indent = "  " * name.count(".")
        label = indent + name.rsplit(".", 1)[-1] if "." in name else name
        lines.append(f"{label:<{width}}{count:>14,}{100 * count / total:>8.1f}%")
    lines.append(f"{'total':<{width}}{counts['total']:>14,}{100.0:>8.1f}%")
    return "\n".join(lines)
