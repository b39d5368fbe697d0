"""The demo's training split ships beside its held-out set (issue 12: fine-tuning works out of the box)."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

pytest.importorskip("sklearn")

from weightlab.demo import HELDOUT, TRAIN, load_digits_split, write_split


def _rows(x: np.ndarray) -> set[bytes]:
    return {row.tobytes() for row in x}


def test_bundled_training_split_is_the_split_the_model_was_trained_on():
    x_tr, y_tr, x_te, y_te = load_digits_split()
    with np.load(TRAIN, allow_pickle=False) as train:
        assert sorted(train.files) == ["x", "y"]
        assert train["x"].dtype == np.float32 and train["x"].shape == (1437, 8, 8, 1)
        assert train["y"].dtype == np.int64 and train["y"].shape == (1437,)
        np.testing.assert_array_equal(train["x"], x_tr)
        np.testing.assert_array_equal(train["y"], y_tr)
        train_rows = _rows(train["x"])
    with np.load(HELDOUT, allow_pickle=False) as heldout:
        np.testing.assert_array_equal(heldout["x"], x_te)
        held_rows = _rows(heldout["x"])
    # Every image of the digits set is distinct, so disjoint rows mean disjoint samples.
    assert len(train_rows) == 1437 and len(held_rows) == 360
    assert not train_rows & held_rows
    assert set(np.unique(y_tr)) == set(range(10))


def test_rebuilding_writes_the_same_bytes(tmp_path):
    train, heldout = write_split(tmp_path)
    # The .npy members byte for byte (the zip container's header fields vary with NumPy's version).
    for new, shipped in ((train, TRAIN), (heldout, HELDOUT)):
        with zipfile.ZipFile(new) as a, zipfile.ZipFile(shipped) as b:
            assert a.namelist() == b.namelist() == ["x.npy", "y.npy"]
            for name in a.namelist():
                assert a.read(name) == b.read(name), name
