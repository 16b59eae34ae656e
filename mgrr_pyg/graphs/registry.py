r"""The topology registry: every graph topology the region, channel and pixel graphs
can take, by name, each with the function that builds its ``edge_index``.

A topology is chosen by a *spec*: its name (``"complete"``) or a tuple of its name and
arguments (``("grid", 1)``, ``("knn", 8)``, ``("prior", 0.3)``), as
:class:`~mgrr_pyg.model.ReasoningConfig`'s ``region_topology``, ``channel_topology``
and ``pixel_topology`` take it (``--set pixel_topology=[grid,1]`` on the command line).
The configuration check, :func:`~mgrr_pyg.graphs.graph_structure` (the model's cached
graphs), the reasoning layer and the graph builders all look topologies up here, so a
new topology is one decorated function, in the package or in your own code (run it
before the model is built or a checkpoint that uses it is loaded):

.. code-block:: python

    from mgrr_pyg.graphs import pairs_edge_index, register_topology

    @register_topology("cross", graphs=("pixel",))
    def cross(graph, hops: int = 1):
        "Pixels within Manhattan distance hops of each other (hops=1: the 4-neighbourhood)."
        height, width = graph.lattice
        ...
        return edge_index  # [2, E], one graph of graph.num_nodes nodes

    model = create_model("tiny", pixel_topology=("cross", 1))

Built in: ``"complete"`` (every graph; the paper's), ``("grid", hops)`` (pixel graph),
``("knn", k)`` (channel and pixel graphs, built per forward from the node features) and
``"prior"`` / ``("prior", threshold)`` (region graph, from the model's relation prior).
"""
from __future__ import annotations

import difflib
import inspect
import typing
from dataclasses import dataclass
from typing import Callable, Optional, Union

import torch
from torch import Tensor
from torch_geometric.utils import add_self_loops

from .topology import (_check_positive_int, check_edge_index, complete_edge_index,
                       grid_edge_index, knn_edge_index, prior_edge_index)

#: The graphs of MGRR-Net a topology can be registered for.
GRAPHS = ("region", "channel", "pixel")
#: Spec names with a meaning of their own in graph_structure (not registrable).
_RESERVED = ("edge_index", "networkx")


@dataclass(frozen=True, eq=False)
class GraphNodes:
    r"""What a topology's builder knows about the graph it connects.

    Attributes:
        num_nodes (int): Nodes per graph :math:`n`.
        lattice (tuple of int, optional): :math:`(H, W)` when the nodes are the pixels
            of a map (the pixel graph: pixel :math:`(r, c)` is node :math:`rW + c`),
            else :obj:`None`.
        prior (torch.Tensor, optional): The relation prior :math:`\mathbf{A}`
            :math:`(n, n)` of the region graph (the model's ``prior``); given only to
            topologies registered with ``uses_prior=True``.
        x (torch.Tensor, optional): Per-forward topologies only: the node features of
            all :obj:`num_graphs` graphs :math:`(Bn, F)`, graph by graph.
        num_graphs (int): :math:`B` for a per-forward topology; 1 for a cached one
            (its one graph is batched by :func:`~mgrr_pyg.graphs.graph_structure`).
    """

    num_nodes: int
    lattice: Optional[tuple[int, int]] = None
    prior: Optional[Tensor] = None
    x: Optional[Tensor] = None
    num_graphs: int = 1


@dataclass(frozen=True, eq=False)
class RegisteredTopology:
    """One registry entry (see :func:`register_topology` for the fields)."""

    name: str
    build: Callable[..., Tensor]
    graphs: tuple[str, ...]
    per_forward: bool
    dense: Union[bool, Callable[..., bool]]
    uses_prior: bool
    check: Optional[Callable[..., None]]
    # Read once, at registration: inspect / typing calls inside a torch.compile trace
    # are graph breaks.
    signature: inspect.Signature
    hints: dict

    def parameters(self) -> list[inspect.Parameter]:
        """The builder's arguments after ``graph``: the spec's arguments."""
        return list(self.signature.parameters.values())[1:]

    def usage(self) -> str:
        """How a spec names it: ``'complete' / ('complete', self_loops)``, ``('knn', k)``."""
        names = [p.name for p in self.parameters()]
        full = f"({', '.join([repr(self.name)] + names)})"
        if not names:
            return repr(self.name)
        if all(p.default is not inspect.Parameter.empty for p in self.parameters()):
            return f"{self.name!r} / {full}"
        return full

    def check_arguments(self, args: tuple) -> tuple:
        """:obj:`args` with the builder's defaults filled in (``("grid",)`` and
        ``("grid", 1)`` are one graph); a ValueError unless they suit the builder (count,
        the types its annotations name: ``int``, ``float``, ``bool``, then its own
        check)."""
        try:
            bound = self.signature.bind(None, *args)
        except TypeError:
            raise ValueError(f"topology {self.name!r} takes {self.usage()}; found "
                             f"{len(args)} argument(s) {args!r}") from None
        for name, value in list(bound.arguments.items())[1:]:
            expected = self.hints.get(name)
            if expected in _TYPE_CHECKS and not _TYPE_CHECKS[expected](value):
                raise ValueError(f"topology {self.name!r}: {name} must be "
                                 f"{_TYPE_NAMES[expected]}; found {value!r}")
        if self.check is not None:
            self.check(*args)
        bound.apply_defaults()
        return tuple(bound.args[1:])

    def is_dense(self, args: tuple = ()) -> bool:
        """Whether the graph is complete with self loops (the layers' dense path)."""
        return bool(self.dense(*args) if callable(self.dense) else self.dense)

    def edges(self, graph: GraphNodes, args: tuple = ()) -> Tensor:
        """The builder's ``edge_index`` for :obj:`graph`, checked (eagerly) to index
        its :math:`Bn` nodes."""
        if not self.uses_prior:
            graph = GraphNodes(graph.num_nodes, graph.lattice, None, graph.x, graph.num_graphs)
        edge_index = self.build(graph, *args)
        check_edge_index(edge_index, graph.num_nodes * graph.num_graphs,
                         f"the edge_index built by topology {self.name!r}")
        return edge_index

    def __repr__(self) -> str:
        return f"RegisteredTopology({self.usage()}, graphs={self.graphs})"


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_TYPE_CHECKS = {int: _is_int, bool: lambda value: isinstance(value, bool),
                float: lambda value: _is_int(value) or isinstance(value, float)}
_TYPE_NAMES = {int: "an integer", bool: "True or False", float: "a number"}

_REGISTRY: dict[str, RegisteredTopology] = {}


def register_topology(name: str, builder: Optional[Callable[..., Tensor]] = None, *,
                      graphs: tuple[str, ...] = GRAPHS, per_forward: bool = False,
                      dense: Union[bool, Callable[..., bool]] = False, uses_prior: bool = False,
                      check: Optional[Callable[..., None]] = None, replace: bool = False):
    r"""Registers a topology under :obj:`name`; use as a decorator or call directly.

    The builder is ``builder(graph, *args) -> edge_index``: :obj:`graph` a
    :class:`GraphNodes`, :obj:`args` the rest of the spec (``("cross", 2)`` calls
    ``builder(graph, 2)``; give them defaults to allow the bare name). It returns the
    ``edge_index`` :math:`(2, E)` of one graph of ``graph.num_nodes`` nodes (sources in
    row 0, PyG's convention; sorted by target, then source, as the built-ins are),
    built once per graph size and cached; a per-forward builder returns the edges of
    all ``graph.num_graphs`` graphs (node ids :math:`[gn, (g+1)n)` for graph :math:`g`).

    Args:
        name (str): The spec name.
        builder (callable, optional): The builder; omitted, a decorator is returned.
        graphs (tuple of str, optional): The graphs it suits, of :data:`GRAPHS`: the
            configuration accepts it for those only. (default: all three)
        per_forward (bool, optional): Built from the node features in every forward
            (like ``"knn"``) instead of cached; channel and pixel graphs only.
            (default: :obj:`False`)
        dense (bool or callable, optional): Whether the graph is complete with self
            loops, so the layers take their exact dense path; a callable gets the
            spec's arguments. (default: :obj:`False`)
        uses_prior (bool, optional): The builder reads ``graph.prior`` (the region
            graph's relation prior): the cache is then keyed by its values.
            (default: :obj:`False`)
        check (callable, optional): ``check(*args)`` raises a ValueError for bad
            arguments (after the count and the ``int`` / ``float`` / ``bool``
            annotations are checked). (default: :obj:`None`)
        replace (bool, optional): Replace a topology of the same name instead of
            refusing. (default: :obj:`False`)
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"register_topology: name must be an identifier-like string "
                         f"(e.g. 'cross'); found {name!r}")
    if name in _RESERVED:
        raise ValueError(f"register_topology: {name!r} is reserved (a graph_structure spec "
                         f"of its own); choose another name")
    graphs = (graphs,) if isinstance(graphs, str) else tuple(graphs)
    if not graphs or any(graph not in GRAPHS for graph in graphs):
        raise ValueError(f"register_topology({name!r}): graphs must be some of {GRAPHS}; "
                         f"found {graphs!r}")
    if per_forward and "region" in graphs:
        raise ValueError(f"register_topology({name!r}): a per-forward topology suits the "
                         "channel and pixel graphs only (the model caches its region graph); "
                         "pass graphs=('channel', 'pixel')")

    def decorate(build: Callable[..., Tensor]) -> Callable[..., Tensor]:
        if not callable(build) or not list(inspect.signature(build).parameters):
            raise ValueError(f"register_topology({name!r}): the builder must be a function "
                             f"builder(graph, *args); found {build!r}")
        if name in _REGISTRY and not replace:
            raise ValueError(f"register_topology: topology {name!r} is already registered "
                             f"({_REGISTRY[name].build.__module__}."
                             f"{_REGISTRY[name].build.__qualname__}); pass replace=True to "
                             "replace it")
        try:
            hints = typing.get_type_hints(build)
        except Exception:  # an annotation that does not resolve: check the count only
            hints = {}
        _REGISTRY[name] = RegisteredTopology(name, build, graphs, per_forward, dense,
                                             uses_prior, check, inspect.signature(build), hints)
        return build

    return decorate if builder is None else decorate(builder)


def list_topologies(graph: Optional[str] = None) -> list[str]:
    """The registered topology names (sorted), or those suiting one of :data:`GRAPHS`."""
    if graph is not None and graph not in GRAPHS:
        raise ValueError(f"graph must be one of {GRAPHS}; found {graph!r}")
    return sorted(name for name, entry in _REGISTRY.items()
                  if graph is None or graph in entry.graphs)


def topology_forms(graph: Optional[str] = None) -> str:
    """The specs a graph takes, for messages: ``'complete' / ('complete', self_loops),
    ('grid', hops) / ...``."""
    return ", ".join(_REGISTRY[name].usage() for name in list_topologies(graph))


def split_topology(spec) -> tuple[str, tuple]:
    """A spec as ``(name, arguments)``: ``"complete"`` -> ``("complete", ())``,
    ``("grid", 1)`` -> ``("grid", (1,))``."""
    if isinstance(spec, str):
        return spec, ()
    if isinstance(spec, (tuple, list)) and spec and isinstance(spec[0], str):
        return spec[0], tuple(spec[1:])
    raise ValueError("a topology is a name ('complete') or a tuple of a name and its "
                     f"arguments (('grid', 1)); found {spec!r}")


def get_topology(name: str, graph: Optional[str] = None) -> RegisteredTopology:
    """The registry entry of :obj:`name`; a ValueError (with the closest name) if it is
    not registered, or not for :obj:`graph`."""
    entry = _REGISTRY.get(name)
    if entry is None:
        close = difflib.get_close_matches(str(name), list(_REGISTRY), n=1)
        raise ValueError(
            f"unknown topology {name!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
            + f"; registered: {', '.join(list_topologies())}. Add one with "
            "mgrr_pyg.graphs.register_topology (in your own code, before the model is built)")
    if graph is not None and graph not in entry.graphs:
        raise ValueError(f"topology {name!r} is for the {' and '.join(entry.graphs)} graph, not "
                         f"the {graph} graph")
    return entry


def check_topology(spec, graph: Optional[str] = None) -> tuple[RegisteredTopology, tuple]:
    """``(entry, arguments)`` of a spec, checked: a registered name (for :obj:`graph`
    when given) and arguments its builder takes (defaults filled in). Raises a
    ValueError saying why not."""
    name, args = split_topology(spec)
    entry = get_topology(name, graph)
    return entry, entry.check_arguments(args)


def is_per_forward(spec) -> bool:
    """Whether the topology is built from the node features in every forward."""
    return get_topology(split_topology(spec)[0]).per_forward


def per_forward_edges(spec, x: Tensor, num_graphs: int, num_nodes: int,
                      lattice: Optional[tuple[int, int]] = None) -> Tensor:
    r"""The ``edge_index`` of a per-forward topology (e.g. ``("knn", k)``) for
    :obj:`num_graphs` graphs of :obj:`num_nodes` nodes with features :obj:`x`
    :math:`(Bn, F)`, graph by graph."""
    name, args = split_topology(spec)
    graph = GraphNodes(num_nodes, lattice, x=x, num_graphs=num_graphs)
    return get_topology(name).edges(graph, args)


# -- the built-in topologies -------------------------------------------------------------
@register_topology("complete", dense=lambda self_loops=True: self_loops)
def complete(graph: GraphNodes, self_loops: bool = True) -> Tensor:
    """Every node receives from every node, itself included unless :obj:`self_loops`
    is False (the paper's graphs; with self loops the layers take the dense path)."""
    return complete_edge_index(graph.num_nodes, self_loops)


@register_topology("grid", graphs=("pixel",),
                   check=lambda hops=1: _check_positive_int(hops, "hops", minimum=0))
def grid(graph: GraphNodes, hops: int = 1) -> Tensor:
    """The pixels within :obj:`hops` rows and columns (the :math:`(2k+1)^2` window of
    :func:`~mgrr_pyg.graphs.grid_edge_index`; 1: the 3x3 neighbourhood)."""
    if graph.lattice is None:
        raise ValueError("topology 'grid' needs a pixel lattice: use it with pixel_graph, "
                         "or pass lattice=(H, W) to graph_structure")
    height, width = graph.lattice
    return grid_edge_index(height, width, hops)


def knn_edges(x: Tensor, k: int, num_graphs: int, num_nodes: int) -> Tensor:
    """The :math:`k` nearest nodes of each graph in feature space, plus a self loop (a
    node's neighbourhood contains it, as on the complete graph); built per call."""
    batch = torch.arange(num_graphs, device=x.device).repeat_interleave(num_nodes)
    edge_index = knn_edge_index(x, k, batch, self_loops=False)
    edge_index, _ = add_self_loops(edge_index, num_nodes=x.size(0))
    return edge_index


@register_topology("knn", graphs=("channel", "pixel"), per_forward=True,
                   check=lambda k: _check_positive_int(k, "k"))
def knn(graph: GraphNodes, k: int) -> Tensor:
    """:func:`knn_edges`: the :math:`k` nearest nodes in feature space and the node."""
    return knn_edges(graph.x, k, graph.num_graphs, graph.num_nodes)


@register_topology("prior", graphs=("region",), uses_prior=True)
def prior(graph: GraphNodes, threshold: float = 0.0) -> Tensor:
    """Node :math:`j` sends to :math:`i` where the relation prior
    :math:`A_{ij} >` :obj:`threshold`, self loops kept
    (:func:`~mgrr_pyg.graphs.prior_edge_index`)."""
    if graph.prior is None:
        raise ValueError("topology 'prior' needs the relation prior: pass prior=A "
                         "(graph_structure), or set_prior on the model")
    return prior_edge_index(graph.prior, threshold)
