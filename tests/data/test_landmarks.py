"""Per-sequence landmark CSVs: 49 / 66 / 68 points reduced to 49, empty cells as NaN."""
import numpy as np
import pytest
from raw_tree_helpers import write_landmark_csv

from mgrr_pyg.data import read_landmark_csv
from mgrr_pyg.facs import convert_to_49


@pytest.mark.parametrize("count", [49, 66, 68])
def test_landmark_csv_reduces_to_49(tmp_path, count):
    rng = np.random.default_rng(count)
    points = [rng.uniform(0, 100, (count, 2)) for _ in range(3)]
    path = tmp_path / "seq.csv"
    write_landmark_csv(path, [5, 6, 9], points, header=count != 66)  # header optional
    frames, read = read_landmark_csv(path)
    assert frames.tolist() == [5, 6, 9]
    np.testing.assert_allclose(read, convert_to_49(np.stack(points)))


def test_landmark_csv_empty_cell_reads_as_nan(tmp_path):
    path = tmp_path / "seq.csv"
    write_landmark_csv(path, [0], [np.ones((49, 2))])
    text = path.read_text().splitlines()
    path.write_text(text[0] + "\n" + text[1].replace(",1.0", ",", 1) + "\n")
    _, points = read_landmark_csv(path)
    assert np.isnan(points[0, 0, 0]) and np.isfinite(points[0, 1:]).all()
