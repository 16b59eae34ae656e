"""Add a graph topology from your own code and train MGRR-Net with it.

One decorated function registers a topology (:func:`mgrr_pyg.graphs.register_topology`);
``--set pixel_topology=...`` on the command line, or ``create_model(...,
pixel_topology=...)`` in Python, selects it. The example: a "cross" neighbourhood for
the pixel graph, the pixels within Manhattan distance ``hops`` of each other (hops=1:
the four neighbours and the pixel itself), next to the built-in ``("grid", hops)``
square window. This script registers it, then runs the ordinary single-fold training
command (``train_bp4d.py``: every option works, ``--help`` lists them) with
``--set pixel_topology=[cross,1]`` put first, so a ``--set pixel_topology=...`` of yours
wins:

    python examples/custom_topology.py                                  # the quick schedule
    python examples/custom_topology.py --set "pixel_topology=[cross,2]" --epochs 1

A checkpoint trained with it stores ``pixel_topology=("cross", hops)``: register the
topology (import this file) before loading it, as for any model code of your own.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor

from mgrr_pyg.graphs import GraphNodes, register_topology


def _check_hops(hops: int = 1) -> None:
    if hops < 0:
        raise ValueError(f"hops must be an integer >= 0; found {hops!r}")


@register_topology("cross", graphs=("pixel",), check=_check_hops)
def cross(graph: GraphNodes, hops: int = 1) -> Tensor:
    r"""Pixel :math:`j` sends to pixel :math:`i` when
    :math:`|r_i - r_j| + |c_i - c_j| \le` :obj:`hops` (so every pixel to itself).

    ``graph.lattice`` is the map's :math:`(H, W)`; pixel :math:`(r, c)` is node
    :math:`rW + c`. Built once per map size and cached by the model.
    """
    height, width = graph.lattice
    rows = torch.arange(height).repeat_interleave(width)  # [HW] row of node r W + c
    cols = torch.arange(width).repeat(height)  # [HW] its column
    distance = ((rows[:, None] - rows[None, :]).abs()
                + (cols[:, None] - cols[None, :]).abs())  # [target, source]
    target, source = (distance <= hops).nonzero(as_tuple=True)  # sorted by target, source
    return torch.stack([source, target])


def main(argv: Optional[Sequence[str]] = None):
    """The training command of ``train_bp4d.py`` with the cross topology selected."""
    import sys

    from mgrr_pyg.train.cli import main as train

    argv = list(sys.argv[1:] if argv is None else argv)
    return train(["--set", "pixel_topology=[cross,1]", *argv], dataset="BP4D",
                 prog="custom_topology.py")


if __name__ == "__main__":
    main()
