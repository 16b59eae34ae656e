"""Videos: streamed decoding, every N-th frame, one row per sampled frame per face (and
one success=0 row for a frame without one), face indices kept across frames."""
from __future__ import annotations

import numpy as np
import pytest

from mgrr_pyg.predict import sources
from mgrr_pyg.predict.sources import iter_video, write_video

from .conftest import VIDEO_FPS, video_frames


def test_streamed_decoding_gives_every_nth_frame_with_its_time(two_face_video):
    decoded = list(iter_video(two_face_video, every=4))
    assert [index for index, _, _ in decoded] == [0, 4, 8]
    assert [t for _, t, _ in decoded] == pytest.approx([0.0, 0.4, 0.8])
    originals = list(video_frames())
    for index, _, pixels in decoded:
        assert pixels.shape == (176, 400, 3) and pixels.dtype == np.uint8
        # lossy, but the frame is the one written there
        assert np.abs(pixels.astype(int) - originals[index]).mean() < 4


@pytest.fixture(scope="module")
def video_table(detector_factory, two_face_video):
    return detector_factory(batch_size=4, landmarks="template").predict(two_face_video)


def test_one_row_per_face_per_frame_and_one_for_the_empty_frame(video_table, two_face_video):
    table = video_table
    assert (table["input"] == str(two_face_video)).all()
    assert sorted(set(table["frame"])) == list(range(12))
    per_frame = table.groupby("frame").size()
    assert per_frame.loc[5] == 1 and (per_frame.drop(5) == 2).all()
    blank = table[table["frame"] == 5].iloc[0]
    assert blank["success"] == 0 and np.isnan(blank["AU01_p"])
    np.testing.assert_allclose(table.drop_duplicates("frame")["timestamp"], np.arange(12) / VIDEO_FPS)
    # rows in frame order, faces in index order within a frame
    assert table["frame"].is_monotonic_increasing


def test_face_indices_follow_the_faces_across_frames(video_table):
    found = video_table[video_table["success"] == 1]
    for face, centre_x in ((0, lambda f: 10 + 3 * f + 80), (1, lambda f: 232 + 80)):
        rows = found[found["face"] == face]
        assert len(rows) == 11
        box_centre = rows["box_x"] + rows["box_w"] / 2
        expected = np.array([centre_x(f) for f in rows["frame"]])
        assert np.abs(box_centre.to_numpy() - expected).max() < 15, face


def test_a_face_appearing_later_gets_the_next_index(detector_factory, tmp_path):
    path = write_video(tmp_path / "late.avi", video_frames(count=6, blank=(), late_right=3), fps=10)
    table = detector_factory(landmarks="template").predict(path, every=1)
    assert table.groupby("frame")["face"].apply(list).tolist() == [[0]] * 3 + [[0, 1]] * 3


def test_every_n_frames_and_batches_stream(detector_factory, two_face_video, monkeypatch):
    decoded = []
    real = sources.iter_video

    def counting(path, every=1):
        for item in real(path, every):
            decoded.append(item[0])
            yield item

    monkeypatch.setattr(sources, "iter_video", counting)
    detector = detector_factory(batch_size=2, landmarks="template")
    chunks = detector.iter_predict(two_face_video, every=3)
    first = next(chunks)
    # the first batch of faces (one frame of two faces) came out after one decoded frame
    assert decoded == [0] and first["frame"].tolist() == [0, 0]
    rest = list(chunks)
    assert decoded == [0, 3, 6, 9]
    assert [c["frame"].tolist() for c in rest] == [[3, 3], [6, 6], [9, 9]]
