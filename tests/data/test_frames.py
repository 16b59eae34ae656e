"""The frame table: rows taken and joined, AU columns picked by number, not-coded labels."""
import numpy as np
import pytest

from mgrr_pyg.data import FrameTable, MISSING_LABEL, read_bp4d


def test_frame_table_take_and_concat(bp4d_tree):
    table = read_bp4d(bp4d_tree.root)
    first, rest = table.take([0, 1]), table.take(np.arange(2, len(table)))
    joined = FrameTable.concat([first, rest])
    for name in ("subject", "sequence", "frame", "image_path", "landmarks", "labels"):
        np.testing.assert_array_equal(getattr(joined, name), getattr(table, name))
    with pytest.raises(ValueError, match="AU columns differ"):
        FrameTable.concat([first, rest.select_aus((1, 2))])


def small_table(labels, aus=(1, 2, 4)):
    n = len(labels)
    return FrameTable(aus=aus, subject=["F001"] * n, sequence=["T1"] * n, frame=range(n),
                      image_path=[f"{i}.jpg" for i in range(n)],
                      landmarks=np.zeros((n, 49, 2)), labels=labels)


def test_label_9_is_not_coded_and_masked_out():
    # BP4D's AU_OCC files and JAA-Net's AUoccur lists code "not coded" as 9.
    assert MISSING_LABEL == 9
    table = small_table([[0, 1, 9], [9, 9, 1]])
    np.testing.assert_array_equal(table.mask, [[True, True, False], [False, False, True]])
    assert table[0].mask == {1: True, 2: True, 4: False}
    assert table[1].labels == {1: 9, 2: 9, 4: 1}


def test_select_aus_picks_columns_by_au_number():
    table = small_table([[0, 1, 9], [9, 0, 1]])
    picked = table.select_aus((4, 1))
    assert picked.aus == (4, 1)
    np.testing.assert_array_equal(picked.labels, [[9, 0], [1, 9]])
    with pytest.raises(ValueError, match=r"AU \[6\] not in the frame table; it has AUs \[1, 2, 4\]"):
        table.select_aus((1, 6))
    with pytest.raises(ValueError, match="expected distinct AU numbers"):
        table.select_aus((1, 1))


def test_rows_that_do_not_line_up_are_an_error_naming_the_column():
    with pytest.raises(ValueError, match=r"FrameTable\.image_path: expected 2 rows .*found 1"):
        FrameTable(aus=(1,), subject=["F001"] * 2, sequence=["T1"] * 2, frame=[0, 1],
                   image_path=["0.jpg"], landmarks=np.zeros((2, 49, 2)), labels=[[0], [1]])
