"""Held-out set loading (pure numpy, no TensorFlow)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from weightlab.core.dataset import HeldOut, conform_inputs, load_heldout
from weightlab.core.errors import DataError


def _save(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_integer_labels(tmp_path):
    x = np.random.default_rng(0).random((5, 8, 8, 1), dtype=np.float32)
    p = _save(tmp_path / "d.npz", x=x, y=np.array([0, 3, 1, 3, 2], dtype=np.int32))
    h = load_heldout(p)
    assert isinstance(h, HeldOut)
    assert h.x.shape == (5, 8, 8, 1) and h.x.dtype == np.float32
    assert h.y.dtype == np.int64 and h.y.tolist() == [0, 3, 1, 3, 2]
    assert h.num_classes == 4 and h.num_samples == 5 and h.sample_shape == (8, 8, 1)
    assert h.path == p


def test_one_hot_and_probability_labels(tmp_path):
    y = np.eye(5, dtype=np.float32)[[4, 0, 2]]
    h = load_heldout(_save(tmp_path / "d.npz", x=np.zeros((3, 2)), y=y))
    assert h.y.tolist() == [4, 0, 2] and h.num_classes == 5
    probs = np.array([[0.1, 0.9], [0.7, 0.3]])
    h = load_heldout(_save(tmp_path / "p.npz", x=np.zeros((2, 2)), y=probs))
    assert h.y.tolist() == [1, 0] and h.num_classes == 2


def test_whole_float_labels_are_accepted(tmp_path):
    h = load_heldout(_save(tmp_path / "d.npz", x=np.zeros((2, 2)), y=np.array([1.0, 0.0])))
    assert h.y.dtype == np.int64 and h.y.tolist() == [1, 0]


def _err(path) -> str:
    with pytest.raises(DataError) as info:
        load_heldout(path)
    msg = str(info.value)
    assert str(path) in msg, msg
    return msg


def test_missing_file(tmp_path):
    assert "does not exist" in _err(tmp_path / "nope.npz")


def test_not_an_npz(tmp_path):
    p = tmp_path / "d.npz"
    p.write_text("hello, not numpy")
    assert "not a NumPy .npz" in _err(p)


def test_single_npy_array(tmp_path):
    p = tmp_path / "d.npy"
    np.save(p, np.zeros(3))
    assert "not an .npz archive" in _err(p)


def test_pickle_file_is_not_unpickled(tmp_path):
    p = tmp_path / "d.npz"
    p.write_bytes(pickle.dumps({"x": [1, 2], "y": [0, 1]}))
    assert "not a NumPy .npz" in _err(p)


def test_missing_key_lists_keys(tmp_path):
    msg = _err(_save(tmp_path / "d.npz", x=np.zeros((2, 2)), labels=np.zeros(2)))
    assert "'y'" in msg and "labels" in msg and "'x'" in msg.split("has")[1]


def test_object_array_refused(tmp_path):
    p = tmp_path / "d.npz"
    np.savez(p, x=np.array([np.zeros(2), "a"], dtype=object), y=np.zeros(2, dtype=int))
    assert "Python objects" in _err(p)


def test_length_mismatch(tmp_path):
    msg = _err(_save(tmp_path / "d.npz", x=np.zeros((3, 2)), y=np.zeros(2, dtype=int)))
    assert "3" in msg and "2" in msg and "length" in msg


def test_empty(tmp_path):
    assert "empty" in _err(_save(tmp_path / "d.npz", x=np.zeros((0, 2)), y=np.zeros(0, dtype=int)))


def test_non_finite_x(tmp_path):
    x = np.zeros((2, 2))
    x[1, 1] = np.nan
    assert "NaN" in _err(_save(tmp_path / "d.npz", x=x, y=np.zeros(2, dtype=int)))


def test_negative_labels(tmp_path):
    assert "negative" in _err(_save(tmp_path / "d.npz", x=np.zeros((2, 2)), y=np.array([0, -1])))


def test_non_integer_labels(tmp_path):
    assert "non-integer" in _err(_save(tmp_path / "d.npz", x=np.zeros((2, 2)), y=np.array([0.5, 1.0])))


def test_bad_label_shape(tmp_path):
    assert "(N,)" in _err(_save(tmp_path / "d.npz", x=np.zeros((2, 2)), y=np.zeros((2, 2, 2))))


def test_non_numeric_x(tmp_path):
    assert "numeric" in _err(_save(tmp_path / "d.npz", x=np.array([["a", "b"]]), y=np.zeros(1, dtype=int)))


def test_x_without_feature_axis(tmp_path):
    assert "(N, ...)" in _err(_save(tmp_path / "d.npz", x=np.zeros(2), y=np.zeros(2, dtype=int)))


def test_conform_inputs():
    x = np.zeros((4, 8, 8), np.float32)
    assert conform_inputs(x, (None, 8, 8)) is x
    assert conform_inputs(x, (None, None, 8)) is x
    assert conform_inputs(x, (None, 8, 8, 1)).shape == (4, 8, 8, 1)
    with pytest.raises(DataError) as info:
        conform_inputs(x, (None, 64), "held.npz")
    msg = str(info.value)
    assert "held.npz" in msg and "(N, 64)" in msg and "(4, 8, 8)" in msg
    with pytest.raises(DataError):
        conform_inputs(x, (None, 8, 8, 3))  # not a size-1 channel: ambiguous, refused


def test_unlabelled_set_holds_x_alone(tmp_path):
    h = load_heldout(_save(tmp_path / "d.npz", x=np.ones((3, 2), np.float32)))
    assert h.y is None and not h.labelled and h.num_samples == 3 and h.num_classes == 0
    assert "empty" in _err(_save(tmp_path / "e.npz", x=np.zeros((0, 2))))
    assert "NaN" in _err(_save(tmp_path / "n.npz", x=np.array([[np.nan, 1.0]])))
