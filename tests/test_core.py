"""Core tests: edits against NumPy references, history, recipes, statistics, layout.

These need neither Qt nor TensorFlow; models are built in memory.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from weightlab.core.atomic import atomic_path
from weightlab.core.edits import (
    Clip,
    Revert,
    Scale,
    ScaleNeurons,
    ZeroNeurons,
    ZeroOutside,
    ZeroRange,
    edit_from_dict,
    neuron_count,
)
from weightlab.core.errors import FormatError, RecipeError, WeightLabError
from weightlab.core.layout import heatmap_layout
from weightlab.core.model import LayerInfo, ModelFile, TensorInfo
from weightlab.core.recipe import load_recipe, parse_recipe, recipe_dict, save_recipe
from weightlab.core.session import EditSession
from weightlab.core.stats import histogram, neuron_norms, tensor_stats, zero_fraction


class DictReader:
    """Reads tensors from a dict and counts reads (to check laziness)."""

    def __init__(self, values):
        self.values = values
        self.reads = 0

    def read(self, info):
        self.reads += 1
        return self.values[info.name].copy()

    def close(self):
        pass


def make_model(tmp_path=None, dtype="float32"):
    rng = np.random.default_rng(42)
    values = {
        "conv2d/kernel": rng.normal(0, 0.2, (3, 3, 2, 4)),
        "conv2d/bias": rng.normal(0, 0.1, (4,)),
        "batch_normalization/gamma": rng.uniform(0.5, 1.5, (4,)),
        "batch_normalization/moving_mean": rng.normal(0, 1, (4,)),
        "dense/kernel": rng.normal(0, 0.3, (16, 5)),
        "dense/bias": rng.normal(0, 0.1, (5,)),
    }
    values = {k: v.astype(dtype) for k, v in values.items()}

    def t(name, trainable=True):
        layer, weight = name.split("/")
        v = values[name]
        return TensorInfo(name, layer, weight, f"layers/{name}", v.shape, str(v.dtype), trainable)

    layers = [
        LayerInfo("conv2d", "Conv2D", [t("conv2d/kernel"), t("conv2d/bias")]),
        LayerInfo(
            "batch_normalization",
            "BatchNormalization",
            [t("batch_normalization/gamma"), t("batch_normalization/moving_mean", False)],
        ),
        LayerInfo("flatten", "Flatten", []),
        LayerInfo("dense", "Dense", [t("dense/kernel"), t("dense/bias")]),
    ]
    path = (tmp_path / "model.h5") if tmp_path else "model.h5"
    reader = DictReader(values)
    return ModelFile(path, "h5", layers, reader), values, reader


@pytest.fixture
def model():
    m, values, _ = make_model()
    return m, values


# -- edits against NumPy -------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
def test_value_edits_match_numpy(dtype):
    m, values, _ = make_model(dtype=dtype)
    s = EditSession(m)
    w = values["conv2d/kernel"]
    cases = [
        (Clip(target="conv2d/kernel", min=-0.1, max=0.15), np.clip(w, w.dtype.type(-0.1), w.dtype.type(0.15))),
        (
            ZeroRange(target="conv2d/kernel", min=-0.05, max=0.05),
            np.where((w >= w.dtype.type(-0.05)) & (w <= w.dtype.type(0.05)), 0, w).astype(w.dtype),
        ),
        (
            ZeroOutside(target="conv2d/kernel", min=-0.2, max=0.2),
            np.where((w < w.dtype.type(-0.2)) | (w > w.dtype.type(0.2)), 0, w).astype(w.dtype),
        ),
        (Scale(target="conv2d/kernel", factor=0.5), w * w.dtype.type(0.5)),
    ]
    for edit, expected in cases:
        s.goto(0)
        changed = s.apply(edit)
        got = s.array("conv2d/kernel")
        assert changed == {"conv2d/kernel"}
        assert got.dtype == w.dtype and got.shape == w.shape
        np.testing.assert_array_equal(got, expected)
        # the input to the edit was not mutated
        np.testing.assert_array_equal(s.original("conv2d/kernel"), w)


def test_zero_range_bounds_are_inclusive():
    m, values, _ = make_model()
    s = EditSession(m)
    w = values["dense/kernel"]
    lo, hi = float(np.sort(w.ravel())[3]), float(np.sort(w.ravel())[10])
    s.apply(ZeroRange(target="dense/kernel", min=lo, max=hi))
    got = s.array("dense/kernel")
    assert np.count_nonzero(got == 0) == 8  # ranks 3..10 inclusive


def test_zero_neurons_ablates_kernel_columns_and_bias(model):
    m, values = model
    s = EditSession(m)
    changed = s.apply(ZeroNeurons(target="dense", neurons=[3, 0]))
    assert changed == {"dense/kernel", "dense/bias"}
    k, b = s.array("dense/kernel"), s.array("dense/bias")
    exp_k, exp_b = values["dense/kernel"].copy(), values["dense/bias"].copy()
    exp_k[:, [0, 3]] = 0
    exp_b[[0, 3]] = 0
    np.testing.assert_array_equal(k, exp_k)
    np.testing.assert_array_equal(b, exp_b)


def test_neuron_edits_on_conv_filters(model):
    m, values = model
    s = EditSession(m)
    s.apply(ScaleNeurons(target="conv2d", neurons=[1, 2], factor=1.5))
    exp = values["conv2d/kernel"].copy()
    exp[..., [1, 2]] *= np.float32(1.5)
    np.testing.assert_array_equal(s.array("conv2d/kernel"), exp)
    expb = values["conv2d/bias"].copy()
    expb[[1, 2]] *= np.float32(1.5)
    np.testing.assert_array_equal(s.array("conv2d/bias"), expb)
    assert neuron_count("conv2d", m) == 4


def test_neuron_edit_on_single_tensor_target(model):
    m, values = model
    s = EditSession(m)
    assert s.apply(ZeroNeurons(target="dense/kernel", neurons=[2])) == {"dense/kernel"}
    assert not s.is_edited("dense/bias")


@pytest.mark.parametrize(
    "edit, fragment",
    [
        (ZeroNeurons(target="dense", neurons=[5]), "has 5 output neurons"),
        (ZeroNeurons(target="flatten", neurons=[0]), "has no kernel"),
        (ZeroNeurons(target="nope", neurons=[0]), "no layer or tensor named 'nope'"),
        (Clip(target="dense/kernal", min=0, max=1), "did you mean 'dense/kernel'"),
    ],
)
def test_edit_target_errors(model, edit, fragment):
    m, _ = model
    s = EditSession(m)
    with pytest.raises(RecipeError, match=fragment):
        s.apply(edit)
    assert s.position == 0 and not s.edited_names


# -- history --------------------------------------------------------------------


def test_history_undo_redo_and_redo_tail(model):
    m, values = model
    s = EditSession(m)
    seen: list[set[str]] = []
    s.subscribe(seen.append)
    s.apply(Clip(target="dense/kernel", min=-0.1, max=0.1))
    s.apply(ZeroNeurons(target="dense", neurons=[1]))
    clipped = np.clip(values["dense/kernel"], -0.1, 0.1)
    assert s.position == 2 and s.can_undo and not s.can_redo and s.is_modified
    assert s.undo() == {"dense/kernel", "dense/bias"}
    np.testing.assert_array_equal(s.array("dense/kernel"), clipped)
    assert s.edited_names == ["dense/kernel"]
    s.undo()
    assert not s.edited_names and not s.is_modified
    assert s.array("dense/kernel") is s.original("dense/kernel")
    assert s.undo() == set()
    s.redo()
    np.testing.assert_array_equal(s.array("dense/kernel"), clipped)
    # a new edit drops the redo tail
    s.apply(Scale(target="conv2d/kernel", factor=2.0))
    assert not s.can_redo and len(s.steps) == 2
    assert seen == [
        {"dense/kernel"},
        {"dense/kernel", "dense/bias"},
        {"dense/kernel", "dense/bias"},
        {"dense/kernel"},
        {"dense/kernel"},
        {"conv2d/kernel"},
    ]


def test_goto_and_revert(model):
    m, values = model
    s = EditSession(m)
    s.apply(Scale(target="dense/kernel", factor=2.0))
    s.apply(Scale(target="conv2d/kernel", factor=3.0))
    s.apply(Revert(target="dense/kernel"))
    assert s.edited_names == ["conv2d/kernel"]
    s.apply(Revert(target="*"))
    assert s.edited_names == []
    s.goto(2)
    assert s.edited_names == ["conv2d/kernel", "dense/kernel"]
    np.testing.assert_array_equal(s.array("dense/kernel"), values["dense/kernel"] * np.float32(2))
    with pytest.raises(IndexError):
        s.goto(9)


def test_arrays_are_read_only_and_read_lazily():
    m, _, reader = make_model()
    s = EditSession(m)
    assert reader.reads == 0
    a = s.array("dense/kernel")
    s.array("dense/kernel")
    assert reader.reads == 1
    with pytest.raises(ValueError):
        a[0, 0] = 1.0
    s.apply(Scale(target="dense/kernel", factor=2.0))
    with pytest.raises(ValueError):
        s.array("dense/kernel")[0, 0] = 1.0


# -- recipes --------------------------------------------------------------------


def test_recipe_round_trip_replays_bit_for_bit(model, tmp_path):
    m, _ = model
    s = EditSession(m)
    s.apply(Clip(target="conv2d/kernel", min=-0.123456789, max=0.1))
    s.apply(ZeroRange(target="dense/kernel", min=-0.05, max=0.05))
    s.apply(ZeroOutside(target="dense/bias", min=-0.1, max=0.1))
    s.apply(ZeroNeurons(target="dense", neurons=[0, 3]))
    s.apply(ScaleNeurons(target="conv2d", neurons=[1], factor=1.5))
    s.apply(Scale(target="batch_normalization/gamma", factor=0.7))
    path = tmp_path / "r.json"
    save_recipe(s.to_recipe(), path)
    text = json.loads(path.read_text())
    assert text["version"] == 1 and [e["op"] for e in text["edits"]] == [
        "clip",
        "zero_range",
        "zero_outside",
        "zero_neurons",
        "scale_neurons",
        "scale",
    ]
    m2, _, _ = make_model()
    s2 = EditSession(m2)
    s2.apply_recipe(path)
    assert s2.edited_names == s.edited_names
    for name in m.tensors:
        assert s2.array(name).tobytes() == s.array(name).tobytes(), name
    assert parse_recipe(s.to_recipe()) == s.applied_edits


def test_recipe_from_issue_parses():
    recipe = {
        "version": 1,
        "edits": [
            {"op": "clip", "target": "conv2d/kernel", "min": -0.1, "max": 0.1},
            {"op": "zero_range", "target": "dense/kernel", "min": -0.01, "max": 0.01},
            {"op": "zero_outside", "target": "dense/bias", "min": -1, "max": 1},
            {"op": "zero_neurons", "target": "dense", "neurons": [0, 3]},
            {"op": "scale_neurons", "target": "dense", "neurons": [1], "factor": 1.5},
            {"op": "scale", "target": "dense/kernel", "factor": 0.5},
        ],
    }
    edits = parse_recipe(recipe)
    assert [e.to_dict() for e in edits][3] == {"op": "zero_neurons", "target": "dense", "neurons": [0, 3]}
    assert recipe_dict(edits)["edits"][0] == recipe["edits"][0]


@pytest.mark.parametrize(
    "recipe, fragment",
    [
        ([], "a recipe is a JSON object"),
        ({"edits": []}, "unsupported recipe version None"),
        ({"version": 1, "edits": {}}, "'edits' must be a list"),
        ({"version": 1, "edits": [{"op": "explode", "target": "x"}]}, "step 1: unknown op 'explode'"),
        ({"version": 1, "edits": [{"op": "clip", "target": "x", "min": 0}]}, r"step 1 \(clip\): missing parameter\(s\) max"),
        ({"version": 1, "edits": [{"op": "scale", "target": "x", "factor": "2"}]}, "'factor' must be a number"),
        ({"version": 1, "edits": [{"op": "scale", "target": "x", "factor": float("nan")}]}, "finite number"),
        ({"version": 1, "edits": [{"op": "zero_neurons", "target": "d", "neurons": [-1]}]}, "non-negative integers"),
        ({"version": 1, "edits": [{"op": "clip", "target": "x", "min": 1, "max": 0}]}, "min must be <= max"),
        ({"version": 1, "edits": [{"op": "scale", "target": "x", "factor": 1, "axis": 0}]}, "unknown parameter"),
    ],
)
def test_malformed_recipes_name_the_step(recipe, fragment):
    with pytest.raises(RecipeError, match=fragment):
        parse_recipe(recipe)


def test_recipe_that_fails_midway_applies_nothing(model):
    m, _ = model
    s = EditSession(m)
    s.apply(Scale(target="dense/kernel", factor=2.0))
    recipe = {
        "version": 1,
        "edits": [
            {"op": "scale", "target": "conv2d/kernel", "factor": 2.0},
            {"op": "clip", "target": "dense/nothing", "min": 0, "max": 1},
        ],
    }
    with pytest.raises(RecipeError, match=r"step 2 \(clip 'dense/nothing'\)"):
        s.apply_recipe(recipe)
    assert s.position == 1 and s.edited_names == ["dense/kernel"] and len(s.steps) == 1


@pytest.mark.parametrize(
    "content, fragment",
    [(None, "no such recipe file"), ("{not json", "not valid JSON"), (b"\xff\xfe\x00", "cannot read recipe")],
)
def test_recipe_file_errors_name_the_file(tmp_path, content, fragment):
    p = tmp_path / "bad.json"
    if isinstance(content, str):
        p.write_text(content)
    elif isinstance(content, bytes):
        p.write_bytes(content)
    with pytest.raises(RecipeError, match=fragment) as e:
        load_recipe(p)
    assert str(p) in str(e.value)


def test_edit_from_dict_rejects_non_objects():
    with pytest.raises(RecipeError, match="expected an object"):
        edit_from_dict(["clip"], "step 1")


# -- saving -----------------------------------------------------------------------


def test_save_refuses_to_overwrite_the_opened_file(tmp_path):
    m, _, _ = make_model(tmp_path)
    m.path.write_bytes(b"original")
    calls = []
    s = EditSession(m, saver=lambda model, changed, out: calls.append((dict(changed), out)))
    s.apply(Scale(target="dense/kernel", factor=2.0))
    with pytest.raises(WeightLabError, match="refusing to write over the opened file"):
        s.save(m.path)
    assert calls == [] and m.path.read_bytes() == b"original"
    s.save(tmp_path / "out.h5")
    assert list(calls[0][0]) == ["dense/kernel"] and not s.is_modified
    s.save(m.path, overwrite=True)
    assert len(calls) == 2


def test_atomic_path_leaves_target_untouched_on_error(tmp_path):
    target = tmp_path / "f.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"


# -- statistics -------------------------------------------------------------------


@pytest.mark.parametrize("bins", [1, 7, 100, 256])
def test_histogram_equals_numpy(bins):
    rng = np.random.default_rng(1)
    a = rng.standard_t(3, size=(50, 40)).astype(np.float32)
    counts, edges = histogram(a, bins)
    ref_c, ref_e = np.histogram(a, bins=bins)
    np.testing.assert_array_equal(counts, ref_c)
    np.testing.assert_array_equal(edges, ref_e)
    counts, edges = histogram(a, bins, range=(-1.0, 2.0))
    ref_c, ref_e = np.histogram(a, bins=bins, range=(-1.0, 2.0))
    np.testing.assert_array_equal(counts, ref_c)


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "int8"])
@pytest.mark.parametrize("range_", [None, (-0.5, 0.25)])
def test_parallel_histogram_is_exactly_numpy(dtype, range_):
    rng = np.random.default_rng(5)
    n = 5_000_000  # above the parallel threshold: split across threads
    if dtype == "int8":
        a = rng.integers(-100, 100, n).astype(dtype)
    else:
        a = rng.normal(0, 0.3, n).astype(dtype)
        # values sitting exactly on bin edges, where rounding decides the bin
        edges = np.histogram_bin_edges(a, 37, range_)
        a[: edges.size] = edges.astype(dtype)
    for bins in (1, 37, 100):
        ref_c, ref_e = np.histogram(a, bins=bins, range=range_)
        for threads in (1, 2, 3):
            c, e = histogram(a, bins, range_, threads=threads)
            np.testing.assert_array_equal(c, ref_c)
            np.testing.assert_array_equal(e, ref_e)
            assert e.dtype == ref_e.dtype


def test_histogram_of_constant_and_empty_arrays():
    for a in (np.full(10, 3.0, np.float32), np.zeros((0,), np.float32), np.array([np.nan, np.inf])):
        finite = a[np.isfinite(a)]
        c, e = histogram(a, 4)
        ref_c, ref_e = np.histogram(finite, 4, range=None if finite.size else (0.0, 1.0))
        np.testing.assert_array_equal(c, ref_c)
        np.testing.assert_array_equal(e, ref_e)


def test_histogram_ignores_non_finite_values():
    a = np.array([0.0, 1.0, np.nan, np.inf, 2.0], dtype=np.float32)
    counts, edges = histogram(a, 2)
    assert counts.sum() == 3 and edges[0] == 0.0 and edges[-1] == 2.0


def test_tensor_stats_equal_numpy():
    rng = np.random.default_rng(2)
    a = rng.normal(0.1, 0.5, (33, 17)).astype(np.float32)
    a[a < -0.6] = 0
    st = tensor_stats(a)
    x = a.astype(np.float64)
    assert st.count == a.size
    assert st.min == x.min() and st.max == x.max()
    assert st.mean == pytest.approx(x.mean(), rel=1e-12)
    assert st.std == pytest.approx(x.std(), rel=1e-12)
    assert st.l1 == pytest.approx(np.abs(x).sum(), rel=1e-12)
    assert st.l2 == pytest.approx(np.linalg.norm(x), rel=1e-12)
    assert st.zeros == np.mean(a == 0) == zero_fraction(a)
    assert st.p1 == np.percentile(x, 1) and st.p99 == np.percentile(x, 99)
    assert tensor_stats(np.zeros((0,))).count == 0


def test_neuron_norms():
    rng = np.random.default_rng(3)
    k = rng.normal(size=(3, 3, 4, 6))
    np.testing.assert_allclose(neuron_norms(k), np.linalg.norm(k.reshape(-1, 6), axis=0))
    np.testing.assert_allclose(neuron_norms(k, ord=1), np.abs(k).reshape(-1, 6).sum(axis=0))
    np.testing.assert_allclose(neuron_norms(np.array([-2.0, 3.0])), [2.0, 3.0])


# -- heatmap layout ---------------------------------------------------------------


@pytest.mark.parametrize("shape", [(), (7,), (5, 3), (3, 3, 2, 4), (5, 2, 3), (2, 3, 4, 5, 6), (1, 1, 3, 2)])
def test_heatmap_layout_maps_every_pixel_back(shape):
    rng = np.random.default_rng(4)
    a = rng.normal(size=shape)
    layout = heatmap_layout(shape)
    img = layout.image(a)
    assert img.shape == layout.image_shape
    shown = 0
    for r in range(img.shape[0]):
        for c in range(img.shape[1]):
            idx = layout.index_at(r, c)
            if idx is None:
                assert np.isnan(img[r, c])
                assert layout.neuron_at(c) is None or len(shape) in (3, 4)
                continue
            shown += 1
            assert img[r, c] == a[idx]
            if shape:
                assert layout.neuron_at(c) == idx[-1]
                c0, c1 = layout.neuron_columns(idx[-1])
                assert c0 <= c < c1
    assert shown == a.size
    assert layout.index_at(-1, 0) is None and layout.index_at(0, img.shape[1]) is None


def test_dense_kernel_is_shown_as_in_by_out_matrix():
    k = np.arange(12.0).reshape(4, 3)
    np.testing.assert_array_equal(heatmap_layout(k.shape).image(k), k)


def test_core_imports_neither_qt_nor_tensorflow():
    code = (
        "import sys, weightlab, weightlab.core.session, weightlab.core.edits, weightlab.core.stats, "
        "weightlab.core.layout, weightlab.core.recipe\n"
        "bad = [m for m in ('tensorflow', 'keras', 'PySide6', 'pyqtgraph') if m in sys.modules]\n"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_neuron_norms_in_blocks_equal_numpy(monkeypatch):
    import weightlab.core.stats as stats

    monkeypatch.setattr(stats, "_NORM_BLOCK_ELEMENTS", 7)  # many blocks, last one partial
    k = np.random.default_rng(6).normal(size=(5, 4, 3, 6)).astype(np.float32)
    flat = k.reshape(-1, 6).astype(np.float64)
    np.testing.assert_allclose(neuron_norms(k), np.linalg.norm(flat, axis=0), rtol=1e-12)
    np.testing.assert_allclose(neuron_norms(k, ord=1), np.abs(flat).sum(axis=0), rtol=1e-12)
    with pytest.raises(ValueError, match="ord must be 1 or 2"):
        neuron_norms(k, ord=3)


# -- the in-memory model ------------------------------------------------------------------


def test_model_from_arrays_groups_layers_by_the_last_slash():
    kernel = np.arange(6, dtype=np.float32).reshape(2, 3)
    m = ModelFile.from_arrays(
        {"block1/conv/kernel": kernel, "block1/conv/bias": np.zeros(3, np.float16), "dense/kernel": kernel.T,
         "scalar": np.float64(2.5), "bn/moving_mean": np.ones(3, np.float32)},
        "notebook",
        classes={"block1/conv": "Conv2D"},
        non_trainable=["bn/moving_mean"],
    )
    assert [layer.name for layer in m.layers] == ["block1/conv", "dense", "scalar", "bn"]
    assert [t.weight for t in m.layer("block1/conv").tensors] == ["kernel", "bias"]
    assert m.layer("block1/conv").class_name == "Conv2D" and m.layer("dense").class_name == ""
    assert m.tensor("block1/conv/bias").dtype == "float16" and m.tensor("scalar").shape == ()
    assert not m.tensor("bn/moving_mean").trainable and m.tensor("dense/kernel").trainable
    assert m.param_count == 6 + 3 + 6 + 1 + 3 and m.format == "memory" and str(m.path) == "notebook"


def test_model_from_arrays_keeps_its_own_read_only_copy():
    kernel = np.ones((2, 2), np.float32)
    m = ModelFile.from_arrays({"dense/kernel": kernel})
    kernel[:] = 7  # the caller's array changes later: the model does not
    a, b = m.read("dense/kernel"), m.read("dense/kernel")
    assert np.array_equal(a, np.ones((2, 2))) and a is not b and a.flags.writeable
    a[:] = 3  # a read is the caller's own copy
    assert np.array_equal(m.read("dense/kernel"), np.ones((2, 2)))
    m.close()
    assert m._reader.closed


def test_model_from_arrays_in_a_session_edits_and_cannot_save(tmp_path):
    m = ModelFile.from_arrays({"dense/kernel": np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4),
                               "dense/bias": np.ones(4, np.float32)}, classes={"dense": "Dense"})
    s = EditSession(m)
    s.apply(ZeroNeurons(target="dense", neurons=[1]))
    assert np.all(s.array("dense/kernel")[:, 1] == 0) and s.array("dense/bias")[1] == 0
    assert not s.array("dense/kernel").flags.writeable
    with pytest.raises(WeightLabError, match="no writer"):
        s.save(tmp_path / "out.keras")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("arrays", "kwargs", "message"),
    [
        ({"": np.zeros(2)}, {}, "tensor names must be"),
        ({"dense/": np.zeros(2)}, {}, "tensor names must be"),
        ({"dense/kernel": np.array(["a", "b"])}, {}, "non-numeric dtype"),
        ({"dense/kernel": np.array([object()])}, {}, "non-numeric dtype"),
        ({"dense/kernel": np.zeros(2)}, {"non_trainable": ["dense/bias"]}, "unknown tensor"),
    ],
)
def test_model_from_arrays_refuses_bad_input(arrays, kwargs, message):
    with pytest.raises(FormatError, match=message) as info:
        ModelFile.from_arrays(arrays, "nb", **kwargs)
    assert "nb" in str(info.value)


def test_zero_fraction_counts_in_pieces_exactly(monkeypatch):
    import weightlab.core.stats as stats_mod

    rng = np.random.default_rng(5)
    a = rng.standard_normal((37, 11)).astype(np.float32)
    a[rng.random(a.shape) < 0.3] = 0
    expected = (a.size - np.count_nonzero(a)) / a.size
    for chunk in (1, 7, 64, a.size, 10 * a.size):
        monkeypatch.setattr(stats_mod, "COUNT_CHUNK", chunk)
        assert zero_fraction(a) == expected
        assert zero_fraction(a.T) == expected  # a non-contiguous view
