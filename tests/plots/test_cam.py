"""Class activation maps per AU (paper Fig. 4)."""
from __future__ import annotations

import pytest
import torch

from mgrr_pyg.model import create_model
from mgrr_pyg.plots.cam import class_activation_maps, plot_class_activation_maps


@pytest.fixture(autouse=True)
def one_thread():
    """Single-threaded: small ops on a shared 2-core machine (see tests/model/conftest.py)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def model_and_images():
    torch.manual_seed(0)
    model = create_model("tiny", aus=(1, 12, 25)).eval()
    images = torch.rand(2, 3, 176, 176, generator=torch.Generator().manual_seed(3)) * 2 - 1
    return model, images


def reference_gradcam(model, images, au_index):
    """Grad-CAM written out with a hook on the stem's output."""
    store = {}

    def keep(module, inputs, output):
        output.retain_grad()
        store["map"] = output

    handle = model.stem.register_forward_hook(keep)
    try:
        out = model(images)
        out.probs[:, au_index].sum().backward()
    finally:
        handle.remove()
    global_map = store["map"]
    weights = global_map.grad.mean((2, 3), keepdim=True)
    cam = torch.relu((weights * global_map).sum(1)).detach()
    low, high = cam.flatten(1).amin(1), cam.flatten(1).amax(1)
    return (cam - low[:, None, None]) / (high - low)[:, None, None]


def test_gradcam_maps_match_a_hooked_reference(model_and_images):
    model, images = model_and_images
    maps, out = class_activation_maps(model, images)
    assert maps.shape == (2, 3, 44, 44) and not maps.requires_grad
    assert maps.amin() >= 0 and maps.amax() <= 1
    for i in range(3):
        torch.testing.assert_close(maps[:, i], reference_gradcam(model, images, i),
                                   rtol=1e-4, atol=1e-5)
    assert not torch.equal(maps[:, 0], maps[:, 1])  # each AU gets its own map
    assert not out.probs.requires_grad


def test_attention_maps_come_from_the_last_pooling_layer(model_and_images):
    model, images = model_and_images
    maps, out = class_activation_maps(model, images, method="attention")
    raw = out.pool_attention[-1]
    low, high = raw.flatten(2).amin(-1), raw.flatten(2).amax(-1)
    torch.testing.assert_close(maps, (raw - low[..., None, None]) / (high - low)[..., None, None])
    with pytest.raises(ValueError, match="attention pooling"):
        class_activation_maps(create_model("tiny", pooling="mean").eval(), images,
                              method="attention")
    with pytest.raises(ValueError, match="method: expected one of"):
        class_activation_maps(model, images, method="saliency")


def test_plot_has_one_panel_per_au_and_writes_a_png(model_and_images, tmp_path):
    model, images = model_and_images
    maps, out = class_activation_maps(model, images)
    fig = plot_class_activation_maps(images[0], maps[0], out.au_centres[0], (1, 12, 25),
                                     probs=out.probs[0])
    assert len(fig.axes) == 3
    assert [ax.get_title().split()[0] for ax in fig.axes] == ["AU1", "AU12", "AU25"]
    centres = fig.axes[1].collections[0].get_offsets()
    torch.testing.assert_close(torch.as_tensor(centres, dtype=torch.float32),
                               out.au_centres[0, 1])
    path = plot_class_activation_maps(images[0], maps[0], out.au_centres[0], (1, 12, 25),
                                      path=tmp_path / "cam.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match=r"maps: expected \[2, S, S\]"):
        plot_class_activation_maps(images[0], maps[0], out.au_centres[0, :2], (1, 12))
