"""The assembled MGRR-Net: shapes, parameter counts, gradients, graph paths, priors,
determinism, compilation, swapped layers, BatchNorm folding and bad input (the reasoning
layer's parts and the Table 6 ablations: test_reasoning.py)."""
from __future__ import annotations

import copy

import pytest
import torch
from model_helpers import full_loss, random_landmarks

from mgrr_pyg import facs
from mgrr_pyg.graphs import au_cooccurrence_prior
from mgrr_pyg.model import MGRROutput, create_model, parameter_counts, parameter_summary


def linear_params(fan_in, fan_out, bias=True):
    return fan_in * fan_out + (fan_out if bias else 0)


def conv_params(cin, cout, k, bias=True, groups=1):
    return cout * (cin // groups) * k * k + (cout if bias else 0)


@pytest.mark.parametrize("preset, n", [("mgrr_bp4d", 12), ("mgrr_disfa", 8)])
def test_paper_sizes_shapes_and_parameter_counts(preset, n, capsys):
    torch.manual_seed(0)
    model = create_model(preset).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 176, 176) * 2 - 1)
    assert isinstance(out, MGRROutput)
    for name in ("probs", "local_probs", "integrated_probs", "local_logits",
                 "integrated_logits"):
        assert getattr(out, name).shape == (1, n), name
    assert out.landmarks.shape == (1, 49, 2)
    assert out.global_map.shape == (1, 64, 44, 44)  # O_G
    assert out.au_maps.shape == (1, n, 44, 44) and out.au_centres.shape == (1, n, 2, 2)
    assert out.region_features.shape == out.au_features.shape == (1, n, 512)
    assert out.alignment_feature.shape == (1, 512)
    assert [a.shape for a in out.adjacencies] == [(n, n)] * 2
    assert [g.shape for g in out.gated_maps] == [(1, 64, 44, 44)] * 2
    assert [a.shape for a in out.pool_attention] == [(1, n, 44, 44)] * 2
    torch.testing.assert_close(out.probs, (out.local_probs + out.integrated_probs) / 2)

    summary = parameter_summary(model)
    print(summary)
    assert "stem" in capsys.readouterr().out
    counts = parameter_counts(model, depth=3)
    assert counts["total"] == sum(p.numel() for p in model.parameters())
    # Hand counts from the layer sizes of docs/architecture.md.
    assert counts["alignment.hidden"] == linear_params(4000, 512)
    assert counts["alignment.regress"] == linear_params(512, 98)
    assert counts["stem.layer1.cells1"] == 64 * conv_params(32, 16, 3) + 64 * 2 * 32
    attention = 3 * linear_params(484, 1024) + linear_params(1024, 484)
    assert counts["layers.0.channel"] == (attention + conv_params(64, 64, 3)
                                          + conv_params(64, 64, 4))
    pixel_attention = 3 * linear_params(64, 1024) + linear_params(1024, 64)
    assert counts["layers.0.pixel"] == (pixel_attention + conv_params(64, 64, 3)
                                        + conv_params(64, 64, 4))
    assert counts["layers.0.region"] == 2 * linear_params(512, 512, bias=False) + 512 + n * n
    assert counts["integrated_head"] == linear_params(n * 512 + 512, n)


def grads_of(model, loss):
    model.zero_grad(set_to_none=True)
    loss.backward(retain_graph=True)
    return {name: (None if p.grad is None else p.grad.abs().sum().item())
            for name, p in model.named_parameters()}


def test_au_losses_do_not_reach_the_landmarks_but_the_integrated_loss_reaches_alignment_features(
        generator, images):
    torch.manual_seed(0)
    model = create_model("tiny").train()
    out = model(images)
    terms = full_loss(model, out, random_landmarks(2, generator), generator)

    local = grads_of(model, terms["au"])
    alignment = [name for name in local if name.startswith("alignment.")]
    assert alignment and all(not local[name] for name in alignment)  # None or exactly 0
    assert local["stem.layer1.conv.weight"] > 0 and local["local_heads.weight"] > 0
    assert not local["integrated_head.classifier.weight"]

    integrated = grads_of(model, terms["integrated"])
    assert integrated["alignment.hidden.weight"] > 0
    assert integrated["alignment.features.0.0.weight"] > 0
    assert not integrated["alignment.regress.weight"]  # landmarks: only from L_align
    assert not integrated["local_heads.weight"]

    align = grads_of(model, terms["align"])
    assert align["alignment.regress.weight"] > 0 and align["stem.layer1.conv.weight"] > 0
    assert not align["region_features.weight"] and not align["local_heads.weight"]


def test_au_losses_do_not_move_given_region_landmarks(generator, images):
    model = create_model("tiny").train()
    landmarks = random_landmarks(2, generator).requires_grad_(True)
    out = model(images, region_landmarks=landmarks)
    full_loss(model, out, None, generator)["au"].backward()
    assert landmarks.grad is None


def test_same_seed_same_model_and_output(images):
    outputs = []
    for _ in range(2):
        torch.manual_seed(7)
        model = create_model("tiny").eval()
        with torch.no_grad():
            outputs.append(model(images))
    torch.testing.assert_close(outputs[0].probs, outputs[1].probs, rtol=0, atol=0)
    torch.testing.assert_close(outputs[0].landmarks, outputs[1].landmarks, rtol=0, atol=0)
    torch.manual_seed(8)
    with torch.no_grad():
        other = create_model("tiny").eval()(images)
    assert not torch.equal(other.probs, outputs[0].probs)


def copy_into(config_overrides, source):
    """A model with other graph topologies but the same weights as ``source``."""
    model = create_model(source.config.replace(**config_overrides))
    model.load_state_dict(source.state_dict())
    return model.eval()


def test_message_passing_on_explicit_complete_graphs_equals_the_dense_path(images):
    """kNN with k = n-1 (+ self loop) and a grid window covering the whole 22x22 lattice
    are complete graphs given as edge lists: the model must give the dense path's output,
    which checks the node order of the channel / pixel reshapes end to end."""
    torch.manual_seed(0)
    dense = create_model("tiny", num_layers=1).eval()
    channels = dense.config.stem.channels[1]
    with torch.no_grad():
        expected = dense(images).probs
        for overrides in ({"channel_topology": ("knn", channels - 1),
                           "pixel_topology": ("grid", 21)},
                          {"pixel_topology": ("knn", 483)}):
            sparse = copy_into(overrides, dense)
            assert sparse.graphs(2, "cpu")["pixel"] is None or \
                sparse.graphs(2, "cpu")["pixel"][1] is None  # edge-list path
            torch.testing.assert_close(sparse(images).probs, expected, rtol=1e-4, atol=1e-5)


def test_prior_topology_and_set_prior(images, generator):
    torch.manual_seed(0)
    model = create_model("tiny", num_layers=2).eval()
    n = model.config.num_aus
    labels = torch.randint(0, 2, (200, n), generator=generator)
    prior = au_cooccurrence_prior(labels)
    model.set_prior(prior)
    for adjacency in model(images).adjacencies:
        torch.testing.assert_close(adjacency.detach(), prior)
    with pytest.raises(ValueError, match=r"expected an \[12, 12\] matrix"):
        model.set_prior(torch.eye(8))

    # A positive prior thresholded at 0 is the complete graph, on the edge-list path.
    positive = 0.1 + 0.9 * torch.rand(n, n, generator=generator)
    model.set_prior(positive)
    thresholded = copy_into({"region_topology": "prior"}, model)
    edges, _, dense_size = thresholded.graphs(2, "cpu")["region"]
    assert dense_size is None and edges.size(1) == 2 * n * n
    with torch.no_grad():
        torch.testing.assert_close(thresholded(images).probs, model(images).probs,
                                   rtol=1e-5, atol=1e-6)
    # Raising the threshold drops edges; the loaded prior defines them after a reload.
    sparse = copy_into({"region_topology": ("prior", 0.5)}, model)
    kept = int((positive > 0.5).sum() + (positive.diagonal() <= 0.5).sum())
    assert sparse.graphs(2, "cpu")["region"][0].size(1) == 2 * kept


def test_swapped_pyg_layers_and_sparse_topologies_train_one_step(images, generator):
    landmarks = random_landmarks(2, generator)
    for overrides in ({"attention_layer": "GATv2Conv", "pixel_topology": ("grid", 1)},
                      {"attention_layer": "TransformerConv", "channel_topology": ("knn", 4),
                       "pixel_topology": ("knn", 8), "region_layer": "GCNConv"}):
        torch.manual_seed(0)
        model = create_model("tiny", num_layers=1, **overrides).train()
        before = copy.deepcopy(model.state_dict())
        optimiser = torch.optim.SGD(model.parameters(), lr=0.01)
        out = model(images)
        loss = full_loss(model, out, landmarks, generator)["total"]
        assert torch.isfinite(loss)
        loss.backward()
        optimiser.step()
        attention = model.layers[0].pixel.attention
        assert type(attention.conv).__name__ == overrides["attention_layer"]
        for name in ("layers.0.pixel.attention.conv", "layers.0.channel.attention.conv",
                     "stem.layer1.conv"):
            changed = [key for key, value in model.state_dict().items()
                       if key.startswith(name) and value.is_floating_point()
                       and not torch.equal(value, before[key])]
            assert changed, name


def test_compiled_tiny_model_traces_in_one_graph_and_matches_eager(images):
    torch.manual_seed(0)
    model = create_model("tiny").eval()
    with torch.no_grad():
        expected = model(images)
        compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
        out = compiled(images)
    torch.testing.assert_close(out.probs, expected.probs, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.landmarks, expected.landmarks, rtol=1e-5, atol=1e-4)


def test_fold_batchnorm_keeps_the_outputs(images):
    torch.manual_seed(0)
    model = create_model("tiny").train()
    with torch.no_grad():  # a few batches give BatchNorm non-trivial running statistics
        for _ in range(3):  # (scaled and shifted, but still inside [-1, 1])
            model(images * (0.5 * torch.rand(1)) + (torch.rand(1) - 0.5))
    model.eval()
    with torch.no_grad():
        expected = model(images)
        folded = copy.deepcopy(model).fold_batchnorm()
        out = folded(images)
    batch_norms = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules()) < batch_norms
    torch.testing.assert_close(out.probs, expected.probs, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out.landmarks, expected.landmarks, rtol=1e-4, atol=1e-3)
    with pytest.raises(ValueError, match="eval mode"):
        from mgrr_pyg.model.folding import fold_batchnorm
        fold_batchnorm(create_model("tiny").train())


def test_old_names_of_batchnorm_folding_and_the_gated_maps_warn_and_work(images):
    model = create_model("tiny", num_layers=1).eval()
    with torch.no_grad():
        out = model(images)
        with pytest.warns(DeprecationWarning, match="call fold_batchnorm"):
            folded = copy.deepcopy(model).fuse_for_inference()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.alignment.modules())
    with pytest.warns(DeprecationWarning, match="read gated_maps"):
        assert out.fused_maps is out.gated_maps


@pytest.mark.parametrize("shape, dtype, match", [
    ((1, 3, 160, 160), torch.float32, r"images: expected a tensor \[B, 3, 176, 176\]"),
    ((1, 1, 176, 176), torch.float32, r"images: expected a tensor \[B, 3, 176, 176\]"),
    ((3, 176, 176), torch.float32, r"images: expected a tensor \[B, 3, 176, 176\]"),
    ((1, 3, 176, 176), torch.uint8, "floating-point"),
])
def test_bad_images_are_refused(shape, dtype, match):
    with pytest.raises(ValueError, match=match):
        create_model("tiny")(torch.zeros(shape, dtype=dtype))


def test_bad_region_landmarks_and_diverged_predictions_are_refused(images, generator):
    model = create_model("tiny").eval()
    landmarks = random_landmarks(2, generator)
    landmarks[0, 3, 1] = float("nan")
    with pytest.raises(ValueError, match="sample 0, point 3 is not finite"):
        model(images, region_landmarks=landmarks)
    landmarks[0, 3, 1] = 400.0
    with pytest.raises(ValueError, match="outside the 176x176 crop"):
        model(images, region_landmarks=landmarks)
    with torch.no_grad():
        model.alignment.regress.bias[5] = float("nan")
    with pytest.raises(ValueError, match="predicted landmarks are not finite"):
        model(images)


def test_predicted_landmarks_far_outside_the_crop_still_give_full_boxes(images):
    """Early in training the predictions can be anywhere: centres are clamped onto the
    grid so every AU keeps a non-empty region."""
    model = create_model("tiny", aus=facs.DISFA_AUS).eval()
    with torch.no_grad():
        model.alignment.regress.bias.fill_(50.0)  # ~ 4400 pixels off the crop
        out = model(images)
    assert (out.au_maps.flatten(2).amax(-1) == 1).all()
    assert torch.isfinite(out.probs).all()


def test_reset_parameters_redraws_weights_and_keeps_the_prior(generator):
    torch.manual_seed(0)
    model = create_model("tiny")
    prior = 0.2 + 0.8 * torch.rand(12, 12, generator=generator)
    model.set_prior(prior)
    before = copy.deepcopy(model.state_dict())
    with torch.no_grad():
        model.layers[0].region.adjacency.add_(1.0)  # as if trained
    model.reset_parameters()
    after = model.state_dict()
    for name in ("stem.layer1.cells1.conv.weight", "alignment.hidden.weight",
                 "region_features.weight", "layers.1.pixel.attention.lin_query.weight",
                 "local_heads.weight", "integrated_head.classifier.weight"):
        assert not torch.equal(before[name], after[name]), name
    for layer in model.layers:
        torch.testing.assert_close(layer.adjacency.detach(), prior)


def test_the_pixel_attention_alone_swaps_for_a_pyg_conv(images):
    """``pixel_attention_layer`` swaps P_G only (``attention_layer`` swaps both branches);
    the default configuration writes no new key, so older checkpoints compare equal."""
    torch.manual_seed(0)
    model = create_model("tiny", num_layers=1, pixel_attention_layer="GATv2Conv")
    layer = model.layers[0]
    assert type(layer.pixel.attention.conv).__name__ == "GATv2Conv"
    assert type(layer.channel.attention).__name__ == "MultiHeadGraphAttention"
    with torch.no_grad():
        assert torch.isfinite(model.eval()(images).probs).all()
    both = create_model("tiny", num_layers=1, attention_layer="GATv2Conv",
                        channel_attention_layer="multihead_graph_attention")
    assert type(both.layers[0].pixel.attention.conv).__name__ == "GATv2Conv"
    assert type(both.layers[0].channel.attention).__name__ == "MultiHeadGraphAttention"
    assert "pixel_attention_layer" not in create_model("tiny").config.to_dict()
    assert model.config.to_dict()["pixel_attention_layer"] == "GATv2Conv"
