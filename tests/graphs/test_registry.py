"""The topology registry: the built-in topologies give the model the edges (and the edge
order) of the topology functions, as before the registry; a topology registered from
outside the package (examples/custom_topology.py) is validated, cached, selected with
``--set`` and trained with; bad specs get errors naming the closest name; and
check_edge_index traces under torch.compile without a graph break."""
import copy
import importlib.util
import json
from pathlib import Path

import pytest
import torch
from torch_geometric.utils import add_self_loops

import mgrr_pyg
from mgrr_pyg.graphs import (batch_edge_index, complete_edge_index, get_topology,
                             graph_structure, grid_edge_index, knn_edge_index, list_topologies,
                             per_forward_edges, prior_edge_index, register_topology, registry)
from mgrr_pyg.model import MGRRConfig, get_config

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "custom_topology.py"
BATCH = 2
REDUCED = 22  # the side of the map the tiny model's channel / pixel graphs are built on


@pytest.fixture
def own_registry(monkeypatch):
    """Topologies a test registers are forgotten after it."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


@pytest.fixture
def example(own_registry):
    """examples/custom_topology.py, imported as user code is: it registers "cross"."""
    spec = importlib.util.spec_from_file_location("custom_topology_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # many small ops on a shared machine (see tests/model/conftest.py)
    yield
    torch.set_num_threads(previous)


def manhattan_edges(height: int, width: int, hops: int) -> torch.Tensor:
    """The cross neighbourhood by brute force: (source, target) with
    |dr| + |dc| <= hops, sorted by target, then source."""
    pairs = [(source, target) for target in range(height * width)
             for source in range(height * width)
             if abs(source // width - target // width) + abs(source % width - target % width)
             <= hops]
    return torch.tensor(pairs).t()


# -- the built-in topologies: the same edges, in the same order, as before ----------------
def test_the_model_gets_the_edges_of_the_topology_functions_in_their_order(one_thread):
    torch.manual_seed(0)
    model = mgrr_pyg.create_model("tiny", pixel_topology=("grid", 2),
                                  region_topology=("prior", 0.3))
    model.set_prior(torch.rand(12, 12))
    graphs = model.graphs(BATCH, "cpu")
    region_edges, node_index, region_dense = graphs["region"]
    # (the prior as the model stores it, read in double precision)
    expected = prior_edge_index(model.prior.double(), 0.3)
    assert torch.equal(region_edges, batch_edge_index(expected, BATCH, 12))
    assert region_dense is None and torch.equal(node_index, torch.arange(12).repeat(BATCH))
    channels = model.config.stem.channels[1]
    assert torch.equal(graphs["channel"][0],
                       batch_edge_index(complete_edge_index(channels), BATCH, channels))
    assert graphs["channel"][1] == channels  # complete with self loops: the dense path
    assert torch.equal(graphs["pixel"][0],
                       batch_edge_index(grid_edge_index(REDUCED, REDUCED, 2), BATCH, REDUCED ** 2))
    assert graphs["pixel"][1] is None

    default = mgrr_pyg.create_model("tiny").graphs(BATCH, "cpu")
    assert default["region"][2] == 12 and default["pixel"][1] == REDUCED ** 2
    assert torch.equal(default["region"][0], batch_edge_index(complete_edge_index(12), BATCH, 12))


def test_knn_is_built_per_forward_as_the_nearest_nodes_then_the_self_loops():
    torch.manual_seed(0)
    x = torch.randn(BATCH * 7, 3)
    batch = torch.arange(BATCH).repeat_interleave(7)
    expected, _ = add_self_loops(knn_edge_index(x, 3, batch, self_loops=False), num_nodes=14)
    assert torch.equal(per_forward_edges(("knn", 3), x, BATCH, 7), expected)
    model = mgrr_pyg.create_model("tiny", channel_topology=("knn", 3))
    assert model.graphs(BATCH, "cpu")["channel"] is None  # not cached: built from the features


def test_inline_sizes_and_arguments_name_the_same_cached_structure():
    assert graph_structure(("grid", 3, 4, 2), 2) is graph_structure(("grid", 2), 2, lattice=(3, 4))
    assert graph_structure(("grid", 3, 4), 2) is graph_structure("grid", 2, lattice=(3, 4))
    assert graph_structure(("complete", 5, True), 2) is graph_structure("complete", 2, num_nodes=5)
    prior = torch.tensor([[1.0, 0.2], [0.7, 1.0]])
    assert graph_structure(("prior", prior, 0.5), 1) is graph_structure(("prior", 0.5), 1,
                                                                           prior=prior)
    assert graph_structure(("prior", 0.5), 1, prior=prior).edge_index.tolist() == [[0, 0, 1],
                                                                                 [0, 1, 1]]


# -- a topology of the user's own --------------------------------------------------------
def test_a_topology_registered_from_user_code_builds_and_is_cached(example):
    assert "cross" in list_topologies("pixel") and "cross" not in list_topologies("channel")
    for height, width, hops in ((1, 1, 1), (3, 4, 1), (4, 3, 2), (2, 5, 0)):
        s = graph_structure(("cross", hops), 3, lattice=(height, width))
        n = height * width
        assert torch.equal(s.edge_index, batch_edge_index(manhattan_edges(height, width, hops),
                                                          3, n))
        assert s.dense_size is None and s.num_nodes_per_graph == n
        assert graph_structure(("cross", hops), 3, lattice=(height, width)) is s
    assert torch.equal(graph_structure("cross", 1, lattice=(3, 3)).edge_index,
                       manhattan_edges(3, 3, 1))  # the default hops=1


def test_a_topology_registered_from_user_code_trains_a_step(example, one_thread):
    torch.manual_seed(0)
    model = mgrr_pyg.create_model("tiny", pixel_topology=("cross", 1)).train()
    expected = batch_edge_index(manhattan_edges(REDUCED, REDUCED, 1), BATCH, REDUCED ** 2)
    edges_seen = []
    attention = model.layers[0].pixel.attention
    handle = attention.register_forward_pre_hook(lambda module, args: edges_seen.append(args[1]))
    images = torch.rand(BATCH, 3, 176, 176) * 2 - 1
    before = {k: v.clone() for k, v in attention.state_dict().items()}
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1)
    out = model(images)
    labels = torch.randint(0, 2, out.probs.shape).float()
    loss = torch.nn.functional.binary_cross_entropy(out.probs, labels)
    loss.backward()
    optimiser.step()
    handle.remove()
    assert torch.isfinite(loss)
    assert len(edges_seen) == 1 and torch.equal(edges_seen[0], expected)
    assert any(not torch.equal(v, before[k]) for k, v in attention.state_dict().items()
               if v.is_floating_point())
    # The configuration stores the spec and reads it back (while "cross" is registered).
    assert MGRRConfig.from_dict(model.config.to_dict()).reasoning.pixel_topology == ("cross", 1)


def test_the_training_command_selects_a_user_topology_with_set(example, tmp_path, capsys,
                                                                 one_thread):
    out = tmp_path / "run"
    argv = ["--synthetic-preset", "tiny", "--cache-dir", str(tmp_path / "cache"),
            "--epochs", "1", "--batch-size", "4", "--max-train-frames", "4",
            "--max-test-frames", "4", "--workers", "0", "--device", "cpu", "--no-progress",
            "--no-tensorboard", "--output", str(out)]
    with pytest.raises(SystemExit):
        example.main(argv + ["--set", "pixel_topology=[crosss,1]"])
    assert "unknown topology 'crosss' (did you mean 'cross'?)" in capsys.readouterr().err
    assert not out.exists()  # refused before any data was made
    example.main(argv)  # one training step (4 frames, batch size 4) on the cross topology
    assert json.loads((out / "model_config.json").read_text())["pixel_topology"] == ["cross", 1]
    from mgrr_pyg.train.checkpoint import model_from_checkpoint

    model = model_from_checkpoint(out / "last.pt")
    assert model.config.reasoning.pixel_topology == ("cross", 1)
    assert torch.equal(model.graphs(1, "cpu")["pixel"][0],
                       manhattan_edges(REDUCED, REDUCED, 1))


def test_registering_again_needs_replace_and_then_builds_the_new_edges(own_registry):
    @register_topology("self_only", graphs=("channel",))
    def self_only(graph):
        return torch.arange(graph.num_nodes).repeat(2, 1)

    first = graph_structure("self_only", 2, num_nodes=3)
    assert first.edge_index.tolist() == [[0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 4, 5]]
    with pytest.raises(ValueError, match="'self_only' is already registered .*replace=True"):
        register_topology("self_only", self_only)
    register_topology("self_only", lambda graph: torch.tensor([[0], [1]]), graphs=("channel",),
                      replace=True)
    assert graph_structure("self_only", 1, num_nodes=3).edge_index.tolist() == [[0], [1]]
    assert get_config("tiny", channel_topology="self_only").reasoning.channel_topology == \
        "self_only"


# -- errors ------------------------------------------------------------------------------
@pytest.mark.parametrize("overrides, match", [
    ({"pixel_topology": ("gird", 1)}, r"pixel_topology: expected one of 'complete' / "
     r"\('complete', self_loops\), 'grid' / \('grid', hops\), \('knn', k\); found \('gird', 1\): "
     r"unknown topology 'gird' \(did you mean 'grid'\?\)"),
    ({"channel_topology": ("grid", 1)}, r"channel_topology: .*'grid' is for the pixel graph, not "
     r"the channel graph"),
    ({"region_topology": ("knn", 2)}, r"region_topology: .*'knn' is for the channel and pixel "
     r"graph, not the region graph"),
    ({"pixel_topology": ("knn", 0)}, r"pixel_topology: .*k must be an integer >= 1; found 0"),
    ({"pixel_topology": ("grid", 1.5)}, r"topology 'grid': hops must be an integer; found 1.5"),
    ({"pixel_topology": ("knn",)}, r"topology 'knn' takes \('knn', k\); found 0 argument"),
    ({"channel_topology": ("complete", 1)}, r"self_loops must be True or False; found 1"),
    ({"region_topology": ("prior", "high")}, r"threshold must be a number; found 'high'"),
    ({"pixel_topology": 3}, r"a topology is a name \('complete'\) or a tuple"),
])
def test_bad_topologies_in_the_config_name_the_setting_and_why(overrides, match):
    with pytest.raises(ValueError, match=match):
        get_config("tiny", **overrides)


@pytest.mark.parametrize("call, match", [
    (lambda: register_topology("edge_index", lambda graph: None), r"'edge_index' is reserved"),
    (lambda: register_topology("two words", lambda graph: None), r"identifier-like string"),
    (lambda: register_topology("t", lambda graph: None, graphs=("face",)),
     r"graphs must be some of \('region', 'channel', 'pixel'\); found \('face',\)"),
    (lambda: register_topology("t", lambda graph: None, per_forward=True),
     r"per-forward topology suits the channel and pixel graphs only"),
    (lambda: register_topology("t", lambda: None), r"builder must be a function builder\(graph"),
    (lambda: get_topology("completes"), r"unknown topology 'completes' \(did you mean "
     r"'complete'\?\); registered: complete, grid, knn, prior\. Add one with"),
    (lambda: graph_structure(("grid", 1), 2, num_nodes=4), r"'grid' needs a pixel lattice"),
    (lambda: graph_structure("prior", 2, num_nodes=3), r"'prior' needs the relation prior"),
    (lambda: graph_structure(("grid", 1), 2, num_nodes=5, lattice=(2, 3)),
     r"num_nodes=5 but the lattice 2x3 has 6 nodes"),
])
def test_bad_registrations_and_lookups_raise_errors_naming_them(own_registry, call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_a_builder_returning_bad_edges_is_named(own_registry):
    register_topology("broken", lambda graph: torch.tensor([[0], [graph.num_nodes]]))
    with pytest.raises(ValueError, match=r"the edge_index built by topology 'broken' must index "
                                         r"nodes in \[0, 4\); found ids from 0 to 4"):
        graph_structure("broken", 1, num_nodes=4)


# -- check_edge_index under torch.compile --------------------------------------------------
def test_check_edge_index_raises_in_eager_mode_and_traces_in_one_graph():
    edge_index = torch.tensor([[0, 2], [1, 1]])
    with pytest.raises(ValueError, match=r"must index nodes in \[0, 2\); found ids from 0 to 2"):
        batch_edge_index(edge_index, 2, 2)
    torch._dynamo.reset()
    compiled = torch.compile(lambda e: batch_edge_index(e, 2, 3), backend="eager",
                             fullgraph=True)  # fullgraph: a graph break raises
    assert torch.equal(compiled(edge_index), torch.tensor([[0, 2, 3, 5], [1, 1, 4, 4]]))


def test_the_models_first_call_builds_its_graphs_inside_one_compiled_graph(one_thread):
    """No graph break on the first call, with the model's graph cache still empty: the
    topology lookup and the edge checks trace (the range check is skipped while
    compiling)."""
    torch.manual_seed(0)
    model = mgrr_pyg.create_model("tiny", num_layers=1).eval()
    fresh = copy.deepcopy(model)  # the same weights, no cached graphs yet
    images = torch.rand(BATCH, 3, 176, 176) * 2 - 1
    torch._dynamo.reset()
    with torch.no_grad():
        expected = model(images)
        out = torch.compile(fresh, backend="eager", fullgraph=True)(images)
    torch.testing.assert_close(out.probs, expected.probs, rtol=1e-5, atol=1e-6)
    key = (BATCH, torch.device("cpu"))
    for name in ("region", "channel", "pixel"):
        assert torch.equal(fresh._graphs[key][name][0], model._graphs[key][name][0]), name
