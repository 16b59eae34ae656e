"""Input checks shared by the layers: cheap shape checks only (no device syncs).
Adjacency forms are checked where they are read, in ``_adjacency.as_edge_index``."""
from __future__ import annotations

from typing import Optional

from torch import Tensor


def check_node_features(x: Tensor, in_channels: int, layer: str) -> None:
    if not isinstance(x, Tensor) or x.dim() != 2:
        found = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{layer}: x must be a 2-D tensor [num_nodes, {in_channels}]; "
                         f"found {found}")
    if x.size(1) != in_channels:
        raise ValueError(f"{layer}: x must have {in_channels} features (in_channels); "
                         f"found {x.size(1)} (x of shape {tuple(x.shape)})")


def check_dense_size(dense_size: Optional[int], num_nodes: int, layer: str) -> Optional[int]:
    """Returns the number of graphs B for the dense path (None when not dense)."""
    if dense_size is None:
        return None
    if isinstance(dense_size, bool) or not isinstance(dense_size, int) or dense_size < 1:
        raise ValueError(f"{layer}: dense_size must be a positive int (nodes per complete "
                         f"graph) or None; found {dense_size!r}")
    if num_nodes % dense_size:
        raise ValueError(f"{layer}: dense_size={dense_size} must divide the number of nodes "
                         f"(every graph complete with dense_size nodes); found {num_nodes} "
                         f"nodes")
    return num_nodes // dense_size
