"""examples/graph_layers.py at a tiny size: the four layers train side by side on a
PyG-generated graph and the table is printed."""
import importlib.util
import os
from pathlib import Path

import torch

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "graph_layers.py"
LAYERS = ("GATConv", "TransformerConv", "MultiHeadGraphAttention", "RegionGraphConv")


def load_example():
    spec = importlib.util.spec_from_file_location("graph_layers_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_four_layers_train_side_by_side_and_print_a_table(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the dataset goes to a temporary folder, not here
    example = load_example()
    threads = torch.get_num_threads()
    try:
        results = example.main(["--nodes-per-class", "12", "--features", "6", "--hidden", "8",
                                "--epochs", "12", "--dropout", "0", "--threads", "1"])
    finally:
        torch.set_num_threads(threads)
    printed = capsys.readouterr().out
    assert [r["layer"] for r in results] == list(LAYERS)
    assert "48 nodes" in printed and "12 epochs" in printed and "CPU threads: 1" in printed
    for result in results:
        row = next(line for line in printed.splitlines() if line.startswith(result["layer"]))
        assert f"{result['test_accuracy']:.3f}" in row and str(result["parameters"]) in row
        assert 0.0 <= result["test_accuracy"] <= 1.0
        assert result["train_ms_per_epoch"] > 0 and result["infer_ms"] > 0
        # Full-batch Adam without dropout on fixed data: the training loss falls.
        assert result["losses"][-1] < result["losses"][0], result["layer"]
    assert os.listdir(tmp_path) == []


def test_the_model_takes_the_layer_class_as_an_argument():
    example = load_example()
    torch.manual_seed(0)
    for name, (conv, kwargs) in example.layer_choices(8).items():
        model = example.GNN(conv, 5, 8, 3, **kwargs)
        assert all(type(layer) is conv for layer in model.convs), name
        x, edge_index = torch.randn(6, 5), torch.tensor([[0, 1, 2, 3, 4, 5], [1, 2, 0, 4, 5, 3]])
        assert model(x, edge_index).shape == (6, 3), name
