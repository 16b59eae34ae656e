"""The calibration report: its numbers are those of the files that were written."""
import csv

import numpy as np

from mgrr_pyg.data.synthetic import calibration_report, generate
from mgrr_pyg.graphs import au_cooccurrence_prior

BP4D_12 = (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24)


def test_report_rates_and_prior_come_from_the_written_labels(tmp_path):
    root = tmp_path / "set"
    generate(root, dataset="BP4D", preset="tiny", frames_per_task=6, workers=1, progress=False)
    rows = []
    for path in sorted((root / "AUCoding" / "AU_OCC").glob("*.csv")):
        with open(path, newline="") as handle:
            table = list(csv.reader(handle))
        cols = [table[0].index(str(au)) for au in BP4D_12]
        rows += [[int(r[c]) for c in cols] for r in table[1:]]
    labels = np.array(rows)
    report = calibration_report(root, tmp_path / "doc" / "cal.md", tmp_path / "doc" / "cal.png",
                                grid_subjects=1, population_seeds=1)
    for k, au in enumerate(BP4D_12):
        coded = labels[:, k] != 9
        assert report["rates"][au] == (labels[coded, k] == 1).mean()
    np.testing.assert_allclose(report["prior"], au_cooccurrence_prior(labels))
    text = (tmp_path / "doc" / "cal.md").read_text()
    for au in BP4D_12:
        assert f"| AU{au} |" in text
    assert "](cal.png)" in text
    assert (tmp_path / "doc" / "cal.png").read_bytes()[:4] == b"\x89PNG"
