"""The research-swap point: a layer by registered name, by PyG class or by PyG
class name, always with MGRR-Net's forward signature."""
from __future__ import annotations

import inspect
from typing import Optional, Union

import torch.nn.functional as F
import torch_geometric.nn as pyg_nn
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing

from .multihead_graph_attention import MultiHeadGraphAttention
from .region_graph_conv import RegionGraphConv

KINDS = ("region", "attention")

_REGISTRY: dict[str, dict[str, type]] = {
    "region": {"region_graph_conv": RegionGraphConv},
    "attention": {"multihead_graph_attention": MultiHeadGraphAttention},
}

# Keyword arguments a model passes to any layer of a kind; a layer that does not
# take one simply does not get it (the contract: unused extras are ignored).
_STANDARD_KWARGS = {
    "region": {"num_aus", "adjacency_init", "per_au_weights", "bias"},
    "attention": {"embed_dim", "heads", "bias"},
}


def register_layer(kind: str, name: str, cls: type) -> None:
    """Registers a layer class under a name for :func:`resolve_layer`. The class
    must take ``(in_channels, out_channels, **kw)`` and have the forward
    signature of :class:`RegionGraphConv` (kind ``"region"``) or
    :class:`MultiHeadGraphAttention` (kind ``"attention"``)."""
    _check_kind(kind)
    _REGISTRY[kind][name.lower()] = cls


def registered_layers(kind: str) -> tuple[str, ...]:
    """Names registered for a kind."""
    _check_kind(kind)
    return tuple(sorted(_REGISTRY[kind]))


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}; found {kind!r}")


def _lookup(kind: str, name_or_cls: Union[str, type]) -> type:
    if isinstance(name_or_cls, type):
        return name_or_cls
    if not isinstance(name_or_cls, str):
        raise ValueError("name_or_cls must be a registered name, a PyG conv class name or "
                         f"a class; found {type(name_or_cls).__name__}")
    wanted = name_or_cls.lower()
    for cls_kind, table in _REGISTRY.items():
        for name, cls in table.items():
            if wanted in (name, cls.__name__.lower()):
                if cls_kind != kind:
                    raise ValueError(f"{name_or_cls!r} is a {cls_kind!r} layer; "
                                     f"found it asked for as kind {kind!r}")
                return cls
    convs = {n.lower(): n for n in pyg_nn.conv.__all__}
    if wanted in convs:
        return getattr(pyg_nn.conv, convs[wanted])
    raise ValueError(
        f"unknown {kind} layer {name_or_cls!r}: expected one of "
        f"{registered_layers(kind)} or a torch_geometric.nn conv class name "
        "(e.g. 'GCNConv', 'GATConv', 'GATv2Conv', 'TransformerConv', 'SAGEConv')")


def _accepted(cls: type) -> tuple[set[str], bool]:
    """Keyword names the constructor takes, and whether it also takes **kwargs."""
    parameters = inspect.signature(cls.__init__).parameters.values()
    names = {p.name for p in parameters
             if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)} - {"self"}
    return names, any(p.kind == p.VAR_KEYWORD for p in parameters)


def _filter_kwargs(kind: str, cls: type, kwargs: dict) -> dict:
    names, _ = _accepted(cls)
    passed = {}
    for key, value in kwargs.items():
        if key in names:
            passed[key] = value
        elif key not in _STANDARD_KWARGS[kind]:
            raise ValueError(
                f"{cls.__name__} takes no argument {key!r}; expected one of "
                f"{sorted(names - {'in_channels', 'out_channels'})} (or the standard "
                f"{kind} arguments {sorted(_STANDARD_KWARGS[kind])}, ignored where unused)")
    return passed


def resolve_layer(kind: str, name_or_cls: Union[str, type], in_channels: int,
                  out_channels: int, **kwargs) -> nn.Module:
    r"""Builds a region or attention layer by name or class, with MGRR-Net's
    forward signature.

    * Our layers by registered name (``"region_graph_conv"``,
      ``"multihead_graph_attention"``; see :func:`register_layer`) or class.
    * Any PyG conv by class or by name (``"GCNConv"``, ``"GATConv"``,
      ``"GATv2Conv"``, ``"TransformerConv"``, ``"SAGEConv"``, ...; case-insensitive),
      wrapped in an adapter: :class:`RegionLayerAdapter` (forward
      ``(x, edge_index, au_index=None, dense_size=None)``) or
      :class:`AttentionLayerAdapter` (forward ``(x, edge_index, dense_size=None,
      return_attention_weights=None)``, ReLU after the conv as in Eq. 4). The
      adapters ignore ``au_index`` / ``dense_size``: a PyG conv always uses the
      edge list (slow and memory-hungry on large complete graphs).
    * Multi-head PyG convs (those with ``heads`` and ``concat``) keep the output
      width at :obj:`out_channels`: ``concat=True`` with ``out_channels // heads``
      per head when :obj:`heads` divides it, else ``concat=False`` (heads
      averaged). Pass ``concat`` yourself to choose.

    Standard keyword arguments a layer does not take (``num_aus``,
    ``adjacency_init``, ``per_au_weights``, ``embed_dim``, ``heads``, ``bias``) are
    ignored; any other unknown keyword is an error.

    Args:
        kind (str): ``"region"`` or ``"attention"``.
        name_or_cls (str or type): The layer.
        in_channels (int): Input feature size.
        out_channels (int): Output feature size.
        **kwargs (optional): Constructor arguments.

    Example:
        >>> layer = resolve_layer("attention", "GATv2Conv", 64, 64, heads=8)
        >>> out = layer(x, edge_index, dense_size=None)
    """
    _check_kind(kind)
    cls = _lookup(kind, name_or_cls)
    ours = cls in _REGISTRY[kind].values()
    if not ours and not (isinstance(cls, type) and issubclass(cls, MessagePassing)):
        raise ValueError(f"{cls!r} is neither a registered {kind} layer nor a "
                         "torch_geometric MessagePassing class")
    passed = _filter_kwargs(kind, cls, kwargs)
    if ours:
        return cls(in_channels, out_channels, **passed)

    names, _ = _accepted(cls)
    width = out_channels
    if "heads" in names and "concat" in names and "heads" in passed:
        heads = passed["heads"]
        concat = passed.get("concat", out_channels % heads == 0)
        if concat and out_channels % heads:
            raise ValueError(f"{cls.__name__}: concat=True needs heads={heads} to divide "
                             f"out_channels={out_channels}; found a remainder "
                             f"{out_channels % heads}")
        passed["concat"] = concat
        width = out_channels // heads if concat else out_channels
    try:
        conv = cls(in_channels, width, **passed)
    except TypeError as error:
        raise ValueError(f"could not build {cls.__name__}({in_channels}, {width}, "
                         f"**{passed}): {error}; pass its required arguments as keywords "
                         "to resolve_layer") from error
    adapter = RegionLayerAdapter if kind == "region" else AttentionLayerAdapter
    return adapter(conv, in_channels, out_channels)


class _PyGAdapter(nn.Module):
    def __init__(self, conv: MessagePassing, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = conv
        self.in_channels = in_channels
        self.out_channels = out_channels
        forward_parameters = inspect.signature(conv.forward).parameters
        self.returns_attention_weights = "return_attention_weights" in forward_parameters

    def reset_parameters(self) -> None:
        r"""Resets all learnable parameters of the wrapped conv."""
        self.conv.reset_parameters()

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.conv})"


class RegionLayerAdapter(_PyGAdapter):
    r"""A PyG conv with :class:`RegionGraphConv`'s forward signature
    (``au_index`` and ``dense_size`` are accepted and ignored).

    Shapes:
        - **input:** :math:`(N, F_{in})`, :math:`(2, E)`
        - **output:** :math:`(N, F_{out})`
    """

    def forward(self, x: Tensor, edge_index: Tensor, au_index: Optional[Tensor] = None,
                dense_size: Optional[int] = None) -> Tensor:
        return self.conv(x, edge_index)


class AttentionLayerAdapter(_PyGAdapter):
    r"""A PyG conv with :class:`MultiHeadGraphAttention`'s forward signature
    (``dense_size`` accepted and ignored), ReLU applied as in Eq. 4.

    Shapes:
        - **input:** :math:`(N, F_{in})`, :math:`(2, E)`
        - **output:** :math:`(N, F_{out})`, or with
          ``return_attention_weights=True`` ``(out, (edge_index, alpha))`` for
          convs that give weights (GATConv, GATv2Conv, TransformerConv, ...)
    """

    def forward(self, x: Tensor, edge_index: Tensor, dense_size: Optional[int] = None,
                return_attention_weights: Optional[bool] = None):
        if not return_attention_weights:
            return F.relu(self.conv(x, edge_index))
        if not self.returns_attention_weights:
            raise ValueError(f"{type(self.conv).__name__} gives no attention weights; "
                             "found return_attention_weights=True")
        out, weights = self.conv(x, edge_index, return_attention_weights=True)
        return F.relu(out), weights
