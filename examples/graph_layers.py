"""MGRR-Net's graph layers on a graph that is not a face: node classification with
``GATConv``, ``TransformerConv``, ``MultiHeadGraphAttention`` and ``RegionGraphConv``
side by side, each as the convolution of the same BasicGNN-style model.

The graph is a stochastic block model that PyG generates on the spot
(:class:`~torch_geometric.datasets.StochasticBlockModelDataset`, into a temporary
folder: nothing is downloaded): one block per class, denser inside blocks than
between them, with noisy Gaussian features around a centre per class. Every layer trains on the same
split from the same seed; the script prints, per layer, the parameter count, test
accuracy (at the best validation epoch), training time per epoch and inference
time per forward pass (medians; on a CPU shared with other jobs, compare layers
within one run).

    python examples/graph_layers.py                     # 4 classes x 150 nodes, 100 epochs
    python examples/graph_layers.py --epochs 20 --nodes-per-class 40   # a quick look

``RegionGraphConv`` weights each edge by the learned relation between the AU ids of
its two nodes; a graph without AU ids gives every node id 0 (``au_index=None``,
``num_aus=1``): one learned edge weight. ``MultiHeadGraphAttention`` attends over
the edges into each node, so the graph gets self loops (every node also attends to
itself, as on MGRR-Net's complete graphs); all four layers see the same edges.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from typing import Optional, Sequence

# Before torch: importing mgrr_pyg first lets it choose OpenMP's passive wait policy,
# which libgomp reads once, when torch loads it (see mgrr_pyg.utils.threads).
from mgrr_pyg.utils.threads import apply_thread_policy, describe_threads  # isort: skip

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.datasets import StochasticBlockModelDataset
from torch_geometric.nn import GATConv, TransformerConv
from torch_geometric.transforms import AddSelfLoops, Compose, RandomNodeSplit

from mgrr_pyg.layers import MultiHeadGraphAttention, RegionGraphConv

HEADS = 2


class GNN(torch.nn.Module):
    r"""``num_layers`` graph convolutions of one class, as PyG's
    :class:`~torch_geometric.nn.models.BasicGNN` stacks them (ReLU and dropout
    between layers), then a linear classifier. The convolution is an argument:
    ``conv(in_channels, hidden_channels, **conv_kwargs)`` builds each layer and
    ``conv(x, edge_index)`` runs it.

    Args:
        conv (type): The convolution class.
        in_channels (int): Node feature size.
        hidden_channels (int): Width of every convolution.
        out_channels (int): Number of classes.
        num_layers (int, optional): Convolutions. (default: :obj:`2`)
        dropout (float, optional): Dropout before each layer. (default: :obj:`0.5`)
        **conv_kwargs (optional): Passed to every ``conv``.

    Shapes:
        - **input:** :math:`(N, F_{in})`, :math:`(2, E)`
        - **output:** logits :math:`(N, C)`
    """

    def __init__(self, conv: type, in_channels: int, hidden_channels: int,
                 out_channels: int, num_layers: int = 2, dropout: float = 0.5,
                 **conv_kwargs) -> None:
        super().__init__()
        self.convs = torch.nn.ModuleList(
            conv(in_channels if i == 0 else hidden_channels, hidden_channels, **conv_kwargs)
            for i in range(num_layers))
        self.classifier = torch.nn.Linear(hidden_channels, out_channels)
        self.dropout = dropout

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        for conv in self.convs:
            x = F.dropout(x, self.dropout, self.training)
            x = F.relu(conv(x, edge_index))  # (MultiHeadGraphAttention ends in ReLU already)
        return self.classifier(F.dropout(x, self.dropout, self.training))


def layer_choices(hidden_channels: int) -> dict[str, tuple[type, dict]]:
    """Each layer with the arguments that give it ``hidden_channels`` outputs."""
    return {
        "GATConv": (GATConv, dict(heads=HEADS, concat=False)),
        "TransformerConv": (TransformerConv, dict(heads=HEADS, concat=False)),
        "MultiHeadGraphAttention": (MultiHeadGraphAttention,
                                    dict(embed_dim=hidden_channels, heads=HEADS)),
        "RegionGraphConv": (RegionGraphConv, dict(num_aus=1)),
    }


def make_graph(root: str, classes: int, nodes_per_class: int, features: int,
               seed: int) -> Data:
    """The stochastic-block-model graph with self loops, noisy class features and a
    20 / 20 / 60 % split (train / validation / test)."""
    torch.manual_seed(seed)  # the SBM edges and the split come from torch's generator
    # The dataset's own features (num_channels) go through scikit-learn's
    # make_classification, which recent versions refuse to call the way PyG 2.8 does
    # (a tensor of class weights): draw them here instead, one Gaussian per class.
    dataset = StochasticBlockModelDataset(
        root, block_sizes=[nodes_per_class] * classes,
        edge_probs=[[0.05 if i == j else 0.01 for j in range(classes)]
                    for i in range(classes)])
    graph = dataset[0]
    graph.num_nodes = classes * nodes_per_class  # an isolated last node has no edge to tell
    centres = torch.randn(classes, features)
    graph.x = centres[graph.y] + 2.0 * torch.randn(graph.num_nodes, features)  # [N, F]
    return Compose([AddSelfLoops(), RandomNodeSplit(num_val=0.2, num_test=0.6)])(graph)


def _milliseconds(step, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def train_and_evaluate(name: str, conv: type, conv_kwargs: dict, graph: Data, classes: int,
                       hidden_channels: int, epochs: int, dropout: float, seed: int) -> dict:
    """Trains one model (Adam, cross-entropy on the training nodes); returns its
    test accuracy at the best validation accuracy, timings and the training losses."""
    torch.manual_seed(seed)
    model = GNN(conv, graph.num_features, hidden_channels, classes, dropout=dropout,
                **conv_kwargs)
    optimiser = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=5e-4)
    losses, epoch_seconds = [], []
    best_val, test_at_best = -1.0, 0.0
    for _ in range(epochs):
        start = time.perf_counter()
        model.train()
        optimiser.zero_grad()
        loss = F.cross_entropy(model(graph.x, graph.edge_index)[graph.train_mask],
                               graph.y[graph.train_mask])
        loss.backward()
        optimiser.step()
        epoch_seconds.append(time.perf_counter() - start)
        losses.append(loss.item())
        model.eval()
        with torch.no_grad():
            predicted = model(graph.x, graph.edge_index).argmax(-1)
        val = (predicted[graph.val_mask] == graph.y[graph.val_mask]).float().mean().item()
        if val > best_val:
            best_val = val
            test_at_best = (predicted[graph.test_mask]
                            == graph.y[graph.test_mask]).float().mean().item()
    with torch.no_grad():
        infer_ms = _milliseconds(lambda: model(graph.x, graph.edge_index), repeats=5)
    return dict(layer=name, parameters=sum(p.numel() for p in model.parameters()),
                val_accuracy=best_val, test_accuracy=test_at_best,
                train_ms_per_epoch=statistics.median(epoch_seconds) * 1e3,
                infer_ms=infer_ms, losses=losses)


def main(argv: Optional[Sequence[str]] = None) -> list[dict]:
    parser = argparse.ArgumentParser(prog="graph_layers.py",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--classes", type=int, default=4,
                        help="blocks = classes (default: %(default)s)")
    parser.add_argument("--nodes-per-class", type=int, default=150,
                        help="nodes per block (default: %(default)s)")
    parser.add_argument("--features", type=int, default=16,
                        help="node feature size (default: %(default)s)")
    parser.add_argument("--hidden", type=int, default=32,
                        help="width of every layer (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=100,
                        help="training epochs per layer (default: %(default)s)")
    parser.add_argument("--dropout", type=float, default=0.5,
                        help="dropout before each layer (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0,
                        help="graph, split and init seed (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: half the CPUs, at least 1)")
    parser.add_argument("--layers", nargs="+", default=list(layer_choices(1)),
                        choices=list(layer_choices(1)), metavar="LAYER",
                        help="layers to compare, of %(choices)s (default: all)")
    args = parser.parse_args(argv)
    if args.hidden % HEADS:
        parser.error(f"--hidden must be divisible by {HEADS} (the attention heads); "
                     f"found {args.hidden}")

    print(describe_threads(apply_thread_policy(args.threads)))
    with tempfile.TemporaryDirectory(prefix="mgrr_sbm_") as root:
        graph = make_graph(root, args.classes, args.nodes_per_class, args.features, args.seed)
    print(f"stochastic block model: {graph.num_nodes} nodes, {graph.num_edges} edges "
          f"(self loops included), {args.classes} classes, {args.features} features; "
          f"{int(graph.train_mask.sum())} / {int(graph.val_mask.sum())} / "
          f"{int(graph.test_mask.sum())} train / val / test nodes; {args.epochs} epochs")
    print(f"{'layer':24} {'params':>7} {'test acc':>8} {'train ms/epoch':>14} "
          f"{'infer ms':>9}")
    results = []
    choices = layer_choices(args.hidden)
    for name in args.layers:
        conv, conv_kwargs = choices[name]
        result = train_and_evaluate(name, conv, conv_kwargs, graph, args.classes,
                                    args.hidden, args.epochs, args.dropout, args.seed)
        results.append(result)
        print(f"{name:24} {result['parameters']:7d} {result['test_accuracy']:8.3f} "
              f"{result['train_ms_per_epoch']:14.1f} {result['infer_ms']:9.1f}")
    return results


if __name__ == "__main__":
    main()
