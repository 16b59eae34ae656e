"""The layers inside the assembled model: PyG's Explainer on the channel and pixel
graphs as MGRR-Net builds them (rebuilt here with the graph builders), and
torch.compile of the whole tiny model with no graph break in layer code."""
import pytest
import torch
from torch_geometric.explain import Explainer, GNNExplainer

import mgrr_pyg
from mgrr_pyg.graphs import channel_graph, dense_size_of, pixel_graph

BATCH = 1


class BranchAsGNN(torch.nn.Module):
    """A branch's attention layer called as the branch calls it, in the
    ``model(x, edge_index)`` form PyG's Explainer uses."""

    def __init__(self, attention, dense_size):
        super().__init__()
        self.attention, self.dense_size = attention, dense_size

    def forward(self, x, edge_index):
        return self.attention(x, edge_index, dense_size=self.dense_size)


@pytest.mark.parametrize("branch_name, pixel_topology", [
    ("channel", "complete"), ("pixel", "complete"), ("pixel", ("grid", 1))])
def test_gnn_explainer_explains_the_models_channel_and_pixel_graphs(branch_name,
                                                                     pixel_topology):
    torch.manual_seed(0)
    model = mgrr_pyg.create_model("tiny", pixel_topology=pixel_topology).eval()
    branch = getattr(model.layers[0], branch_name)
    global_map = torch.randn(BATCH, model.config.stem.channels[1], 44, 44)
    with torch.no_grad():
        reduced = branch.reduce(global_map)  # the map the branch turns into a graph
    build = channel_graph if branch_name == "channel" else pixel_graph
    topology = "complete" if branch_name == "channel" else \
        (pixel_topology if pixel_topology == "complete" else ("grid", pixel_topology[1]))
    graph = build(reduced, topology)
    # The builder's graph is the one the model runs its branch on.
    model_edges, model_dense_size = model.graphs(BATCH, "cpu")[branch_name]
    assert dense_size_of(graph) == model_dense_size
    assert (model_dense_size is not None) == (topology == "complete")
    assert torch.equal(graph.x, branch.to_nodes(reduced))
    assert set(map(tuple, graph.edge_index.t().tolist())) == \
        set(map(tuple, model_edges.t().tolist()))

    gnn = BranchAsGNN(branch.attention, dense_size_of(graph))
    node = 3
    explainer = Explainer(gnn, GNNExplainer(epochs=2), explanation_type="model",
                          edge_mask_type="object",
                          model_config=dict(mode="regression", task_level="node",
                                            return_type="raw"))
    with torch.no_grad():
        before = gnn(graph.x, graph.edge_index)
    explanation = explainer(graph.x, graph.edge_index, index=node)
    # One attention layer: exactly the edges into the explained node act on it.
    assert torch.equal(explanation.edge_mask > 0, graph.edge_index[1] == node)
    assert branch.attention.explain is None
    with torch.no_grad():
        torch.testing.assert_close(gnn(graph.x, graph.edge_index), before)


def test_the_model_compiles_with_no_graph_break_in_layer_code():
    torch.manual_seed(0)
    model = mgrr_pyg.create_model("tiny").eval()
    images = torch.rand(BATCH, 3, 176, 176) * 2 - 1
    torch._dynamo.reset()
    with torch.no_grad():
        # The first call, with the model's graph cache still empty, traces everything
        # the forward runs (building the cached graphs breaks the graph: not layer code).
        explained = torch._dynamo.explain(model)(images)
    in_layers = [(reason.reason.splitlines()[0], [f"{f.filename}:{f.lineno}"
                                                  for f in reason.user_stack])
                 for reason in explained.break_reasons
                 if any("mgrr_pyg/layers/" in f.filename for f in reason.user_stack)]
    assert in_layers == []
    assert explained.graph_count >= 1 and explained.op_count > 0

    torch._dynamo.reset()
    with torch.no_grad():
        eager = model(images)
        compiled = torch.compile(model, backend="aot_eager")(images)
    for name in ("probs", "au_features", "landmarks"):
        torch.testing.assert_close(getattr(compiled, name), getattr(eager, name),
                                   rtol=1e-5, atol=1e-6, msg=name)
    for compiled_map, eager_map in zip(compiled.gated_maps, eager.gated_maps):
        torch.testing.assert_close(compiled_map, eager_map, rtol=1e-5, atol=1e-6)
