"""PreparedListDataset: sample contract, paper augmentation, determinism."""
import numpy as np
import pytest
import torch
from raw_tree_helpers import MARKS, draw_face, nearest_mark, reference_faces
from torch.utils.data import DataLoader

from mgrr_pyg.data import FrameTable, PreparedListDataset, write_prepared
from mgrr_pyg.facs import BP4D_AUS

# From JAA-Net's 1-based flip list (docs/protocol.md): positions 1<->10, 20<->29, 32<->38 (0-based pairs).
FLIP_PARTNER = {0: 9, 9: 0, 19: 28, 28: 19, 31: 37, 37: 31}
N = 6


@pytest.fixture
def lists(tmp_path):
    """Six aligned 200x200 PNG faces with blobs at marked landmarks, as prepared lists."""
    rng = np.random.default_rng(0)
    faces = reference_faces()
    paths, landmarks = [], []
    for i in range(N):
        lm = faces[i] + rng.uniform(-3, 3, (49, 2))
        path = tmp_path / "images" / "BP4D" / "F001" / "T1" / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        draw_face(200, lm, rng).save(path)
        paths.append(str(path))
        landmarks.append(lm)
    labels = rng.choice([0, 1, 9], size=(N, 12), p=[0.5, 0.35, 0.15])
    labels[0, 3] = 9
    table = FrameTable(aus=BP4D_AUS, subject=["F001"] * N, sequence=["T1"] * N, frame=range(N),
                       image_path=paths, landmarks=np.stack(landmarks), labels=labels)
    write_prepared(table, tmp_path, "BP4D_part1")
    return tmp_path, table


def original_pixels(table, i):
    from PIL import Image

    with Image.open(table.image_path[i]) as image:
        return np.asarray(image.convert("RGB")).astype(np.float32)


def test_sample_contract(lists):
    root, table = lists
    ds = PreparedListDataset(root, "BP4D_part1", train=True)
    assert len(ds) == N and ds.aus == BP4D_AUS
    assert ds.labels.dtype == torch.int64 and ds.labels.shape == (N, 12)
    np.testing.assert_array_equal(ds.labels.numpy(), table.labels)
    sample = ds[0]
    assert set(sample) == {"image", "landmarks", "labels", "label_mask", "interocular", "index"}
    assert sample["image"].shape == (3, 176, 176) and sample["image"].dtype == torch.float32
    assert sample["image"].min() >= -1.0 and sample["image"].max() <= 1.0
    assert sample["image"].min() < -0.5 and sample["image"].max() > 0.5  # really spans the range
    assert sample["landmarks"].shape == (49, 2) and sample["landmarks"].dtype == torch.float32
    assert sample["labels"].dtype == torch.float32 and sample["label_mask"].dtype == torch.bool
    for i in range(N):
        s = ds[i]
        coded = table.labels[i] != 9
        np.testing.assert_array_equal(s["label_mask"].numpy(), coded)
        np.testing.assert_array_equal(s["labels"].numpy(), np.where(coded, table.labels[i], 0))
        eyes = table.landmarks[i, 19:25].mean(0) - table.landmarks[i, 25:31].mean(0)
        assert s["interocular"] == pytest.approx(np.hypot(*eyes), rel=1e-4)
        assert s["index"] == i
    assert not ds[0]["label_mask"][3]


def test_test_samples_are_the_centre_crop(lists):
    root, table = lists
    ds = PreparedListDataset(root, "BP4D_part1", train=False)
    for epoch in (0, 5):
        ds.set_epoch(epoch)
        for i in range(N):
            s = ds[i]
            expected = original_pixels(table, i)[12:188, 12:188] / 127.5 - 1
            np.testing.assert_allclose(s["image"].permute(1, 2, 0).numpy(), expected, atol=1e-6)
            np.testing.assert_allclose(s["landmarks"].numpy(), table.landmarks[i] - 12, atol=1e-3)


def test_training_crops_and_flips_move_landmarks_with_the_image(lists):
    root, table = lists
    ds = PreparedListDataset(root, "BP4D_part1", train=True, seed=3)
    seen_flips, seen_offsets = set(), set()
    for epoch in range(4):
        ds.set_epoch(epoch)
        for i in range(N):
            x, y, flip = ds.augmentation(i)
            seen_flips.add(flip)
            seen_offsets.add((x, y))
            assert 0 <= x <= 24 and 0 <= y <= 24
            s = ds[i]
            crop = original_pixels(table, i)[y:y + 176, x:x + 176]
            if flip:
                crop = crop[:, ::-1]
            np.testing.assert_allclose(s["image"].permute(1, 2, 0).numpy(), crop / 127.5 - 1, atol=1e-6)
            image = (s["image"].permute(1, 2, 0).numpy() + 1) * 127.5
            for j in MARKS:
                source = FLIP_PARTNER[j] if flip else j
                expected = table.landmarks[i, source] - (x, y)
                if flip:
                    expected[0] = 175 - expected[0]
                np.testing.assert_allclose(s["landmarks"][j].numpy(), expected, atol=1e-3)
                px, py = np.round(s["landmarks"][j].numpy()).astype(int)
                assert nearest_mark(image[py, px]) == source
    assert seen_flips == {True, False} and len(seen_offsets) > 10


def test_augmentation_is_a_function_of_seed_epoch_and_index(lists):
    root, _ = lists
    a = PreparedListDataset(root, "BP4D_part1", train=True, seed=7)
    b = PreparedListDataset(root, "BP4D_part1", train=True, seed=7)
    b.set_epoch(2)
    for i in reversed(range(N)):  # access order does not matter
        b[i]
    b.set_epoch(0)
    for i in range(N):
        assert torch.equal(a[i]["image"], b[i]["image"])
        assert torch.equal(a[i]["landmarks"], b[i]["landmarks"])
    params = lambda ds: [ds.augmentation(i) for i in range(N)]  # noqa: E731
    first = params(a)
    a.set_epoch(1)
    assert params(a) != first
    other_seed = PreparedListDataset(root, "BP4D_part1", train=True, seed=8)
    assert params(other_seed) != first


def test_loader_workers_see_the_same_samples(lists):
    root, _ = lists
    ds = PreparedListDataset(root, "BP4D_part1", train=True, seed=1)
    ds.set_epoch(3)
    batches = {}
    for workers in (0, 2):
        loader = DataLoader(ds, batch_size=4, shuffle=False, num_workers=workers)
        batches[workers] = list(loader)
    for one, two in zip(batches[0], batches[2]):
        for key in one:
            assert torch.equal(one[key], two[key]), key


def test_aus_select_and_reorder(lists):
    root, table = lists
    ds = PreparedListDataset(root, "BP4D_part1", train=False, aus=(24, 1, 12))
    assert ds.aus == (24, 1, 12)
    np.testing.assert_array_equal(ds.labels.numpy(), table.labels[:, [11, 0, 6]])
    assert ds[0]["labels"].shape == (3,)
    with pytest.raises(ValueError, match=r"AU \[9, 25\] not in"):
        PreparedListDataset(root, "BP4D_part1", train=False, aus=(1, 9, 25))


def test_images_not_found_names_the_list_and_the_image(lists, tmp_path):
    root, _ = lists
    with pytest.raises(FileNotFoundError, match=r"BP4D_part1_path.txt, line 1: expected an image "
                                                 r"file at .*nowhere/BP4D/F001/T1/0.png, found nothing"):
        PreparedListDataset(root, "BP4D_part1", train=False, image_root=tmp_path / "nowhere")


def test_repr(lists):
    root, _ = lists
    assert repr(PreparedListDataset(root, "BP4D_part1", train=False)) == (
        "PreparedListDataset(BP4D_part1, 6 frames, AUs [1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24], "
        "train=False)")
