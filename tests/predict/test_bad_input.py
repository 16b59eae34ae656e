"""Bad input: unreadable, empty and non-image files, broken or unsupported video
containers raise an error naming the file; a folder run reports, skips and says so."""
from __future__ import annotations

import io
import wave

import numpy as np
import pytest
from PIL import Image

from mgrr_pyg.predict.cli import main as predict_main
from mgrr_pyg.predict.sources import InputError

from .conftest import render_face


@pytest.fixture(scope="module")
def detector(detector_factory):
    return detector_factory(landmarks="template")


def jpeg_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(render_face("F002")[0]).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, two_face_video):
    folder = tmp_path_factory.mktemp("bad")
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.txt").write_text("not an image\n")
    (folder / "truncated.jpg").write_bytes(jpeg_bytes()[:400])
    (folder / "junk.mp4").write_bytes(b"\x00\x01garbage" * 100)
    (folder / "cut.mp4").write_bytes(two_face_video.read_bytes()[:3000])  # moov atom lost
    (folder / "empty.avi").write_bytes(b"")
    with wave.open(str(folder / "audio.mp4"), "wb") as sound:  # a container without video
        sound.setnchannels(1), sound.setsampwidth(2), sound.setframerate(8000)
        sound.writeframes(b"\x00\x00" * 800)
    return folder


@pytest.mark.parametrize("name, expected", [
    ("empty.jpg", "empty file"),
    ("notes.txt", "neither"),
    ("truncated.jpg", "truncated or damaged"),
    ("junk.mp4", "FFmpeg cannot open"),
    ("cut.mp4", "FFmpeg cannot open"),
    ("empty.avi", "an empty file"),
    ("audio.mp4", "a container without a video stream"),
    ("missing.png", "no such file"),
])
def test_an_unreadable_file_is_an_error_naming_it(detector, bad_files, name, expected):
    path = bad_files / name
    with pytest.raises(InputError) as err:
        detector.predict(path)
    assert str(path) in str(err.value) and expected in str(err.value)


def test_a_folder_run_skips_bad_files_and_reports_them(detector, bad_files, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for bad in bad_files.iterdir():
        (folder / bad.name).write_bytes(bad.read_bytes())
    (folder / "good.jpg").write_bytes(jpeg_bytes())
    (folder / ".hidden").write_bytes(b"x")  # dot files are not inputs
    table = detector.predict(folder)
    assert table["input"].tolist() == [str(folder / "good.jpg")]
    skipped = sorted(source for source, _ in detector.report.skipped)
    assert skipped == sorted(str(folder / b.name) for b in bad_files.iterdir())


def test_skip_bad_covers_files_given_by_name(detector, bad_files):
    table = detector.predict([bad_files / "notes.txt", np.zeros((64, 64, 3), np.uint8)],
                             skip_bad=True)
    assert table["input"].tolist() == ["array[1]"]
    assert [s for s, _ in detector.report.skipped] == [str(bad_files / "notes.txt")]


def test_a_video_damaged_part_way_names_the_file_and_the_last_good_frame(detector, tmp_path,
                                                                          monkeypatch):
    import av

    from mgrr_pyg.predict import sources

    real_open = sources._open_video

    class Breaking:
        """A container whose stream fails after three frames (as a damaged file does)."""

        def __init__(self, container):
            self.container, self.streams = container, container.streams

        def decode(self, stream):
            for k, frame in enumerate(self.container.decode(stream)):
                if k == 3:
                    raise av.error.InvalidDataError(1094995529, "Invalid data found")
                yield frame

        def close(self):
            self.container.close()

    path = sources.write_video(tmp_path / "v.mkv", (np.full((32, 32, 3), k * 20, np.uint8)
                                                    for k in range(6)))
    monkeypatch.setattr(sources, "_open_video", lambda p: Breaking(real_open(p)))
    with pytest.raises(InputError, match=r"v\.mkv: the video stream is damaged: decoding failed "
                                         r"after frame 2"):
        detector.predict(path)


def test_the_cli_reports_skips_at_the_end_and_refuses_bad_files_by_name(checkpoint, bad_files,
                                                                        tmp_path, capsys):
    out = tmp_path / "out.csv"
    assert predict_main([str(bad_files), "--checkpoint", str(checkpoint), "-o", str(out),
                         "--landmarks", "template"]) == 0
    err = capsys.readouterr().err
    assert "skipped 7 unreadable inputs" in err and "notes.txt" in err
    assert out.read_text().startswith("input,frame,timestamp,face,success,confidence,box_x")
    bad_out = tmp_path / "bad.csv"
    with pytest.raises(SystemExit) as code:
        predict_main([str(bad_files / "junk.mp4"), "--checkpoint", str(checkpoint), "-o", str(bad_out)])
    assert code.value.code == 2
    err = capsys.readouterr().err
    assert "junk.mp4" in err and "no output written" in err
    assert not bad_out.exists()


def test_the_cli_says_how_to_get_a_checkpoint(tmp_path, capsys):
    with pytest.raises(SystemExit):
        predict_main([str(tmp_path), "--checkpoint", str(tmp_path / "none.pt"), "-o", str(tmp_path / "o.csv")])
    assert "mgrr-train" in capsys.readouterr().err
