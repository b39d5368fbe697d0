"""Every edit op against a NumPy reference, on tensors of every kind; targets; toggling steps."""

from __future__ import annotations

import math

import numpy as np
import pytest

from weightlab.core.edits import (
    INITIALIZERS,
    Add,
    AddNoise,
    Clip,
    ClipPercentile,
    PruneMagnitude,
    PruneNeurons,
    Reinit,
    Scale,
    ScaleNeurons,
    SetValue,
    ZeroNeurons,
    compute_fans,
    resolve_tensors,
)
from weightlab.core.errors import RecipeError
from weightlab.core.graph import following_batchnorm
from weightlab.core.model import ModelFile
from weightlab.core.recipe import parse_recipe
from weightlab.core.session import EditSession
from weightlab.core.stats import neuron_norms

#: Shapes of every kind of tensor, as Keras 3 stores them.
SHAPES = {
    "conv2d": {"kernel": (3, 3, 3, 8), "bias": (8,)},
    "batch_normalization": {"gamma": (8,), "beta": (8,), "moving_mean": (8,), "moving_variance": (8,)},
    "depthwise_conv2d": {"kernel": (3, 3, 4, 2), "bias": (8,)},  # multiplier 2
    "embedding": {"embeddings": (50, 6)},
    "lstm": {"kernel": (6, 16), "recurrent_kernel": (4, 16), "bias": (16,)},
    "dense": {"kernel": (32, 10), "bias": (10,)},
}
CLASSES = {
    "conv2d": "Conv2D",
    "batch_normalization": "BatchNormalization",
    "depthwise_conv2d": "DepthwiseConv2D",
    "embedding": "Embedding",
    "lstm": "LSTM",
    "dense": "Dense",
}
ALL = [f"{layer}/{w}" for layer, ws in SHAPES.items() for w in ws]


def build(config=None, dtype="float32", seed=0):
    rng = np.random.default_rng(seed)
    values = {}
    for layer, ws in SHAPES.items():
        for w, shape in ws.items():
            v = rng.normal(0, 0.3, shape)
            if w == "moving_variance":
                v = np.abs(v) + 0.5
            values[f"{layer}/{w}"] = v.astype(dtype)
    moving = [name for name in values if name.rpartition("/")[2].startswith("moving")]
    model = ModelFile.from_arrays(values, "m.keras", format="keras", classes=CLASSES, non_trainable=moving,
                                  config=config)
    return EditSession(model), values


def sequential_config(names):
    return {
        "class_name": "Sequential",
        "config": {"layers": [{"class_name": cls, "config": {"name": n}} for n, cls in names]},
    }


@pytest.fixture
def session():
    return build()


# -- value edits on every kind of tensor -----------------------------------------------


@pytest.mark.parametrize("name", ALL)
def test_value_ops_on_every_tensor_kind(name):
    s, values = build()
    w = values[name]
    checks = [
        (Clip(target=name, min=-0.2, max=0.1), np.clip(w, np.float32(-0.2), np.float32(0.1))),
        (Scale(target=name, factor=-1.5), w * np.float32(-1.5)),
        (Add(target=name, value=0.25), w + np.float32(0.25)),
    ]
    lo, hi = np.percentile(w.astype(np.float64), [5, 95])
    checks.append((ClipPercentile(target=name, lower=5, upper=95), np.clip(w, np.float32(lo), np.float32(hi))))
    checks.append((PruneMagnitude(target=name, threshold=0.1), np.where(np.abs(w) <= np.float32(0.1), 0, w)))
    for edit, expected in checks:
        s.goto(0)
        s.apply(edit)
        got = s.array(name)
        assert got.dtype == w.dtype
        np.testing.assert_array_equal(got, expected.astype(w.dtype), err_msg=edit.describe())


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.5, 0.9, 1.0])
def test_prune_magnitude_by_sparsity_per_tensor(session, sparsity):
    s, values = session
    s.apply(PruneMagnitude(target="*/kernel", sparsity=sparsity))
    for name in resolve_tensors("*/kernel", s.model):
        w, got = values[name], s.array(name)
        pruned = got == 0
        assert pruned.sum() == math.floor(sparsity * w.size), name
        if 0 < pruned.sum() < w.size:
            assert np.abs(w[pruned]).max() <= np.abs(w[~pruned]).min()
        np.testing.assert_array_equal(got[~pruned], w[~pruned])


def test_prune_magnitude_global_uses_one_threshold(session):
    s, values = session
    targets = resolve_tensors(["conv2d/kernel", "dense/kernel", "lstm/kernel"], s.model)
    s.apply(PruneMagnitude(target=list(targets), sparsity=0.6, scope="global"))
    total = sum(values[n].size for n in targets)
    pruned = {n: s.array(n) == 0 for n in targets}
    assert sum(int(p.sum()) for p in pruned.values()) == math.floor(0.6 * total)
    max_pruned = max(np.abs(values[n][pruned[n]]).max() for n in targets)
    min_kept = min(np.abs(values[n][~pruned[n]]).min() for n in targets)
    assert max_pruned <= min_kept
    # per-tensor fractions differ: the global threshold is shared, not the sparsity
    fractions = [pruned[n].mean() for n in targets]
    assert max(fractions) - min(fractions) > 0.01


def test_prune_magnitude_needs_threshold_xor_sparsity():
    with pytest.raises(RecipeError, match="exactly one of threshold or sparsity"):
        parse_recipe({"version": 1, "edits": [{"op": "prune_magnitude", "target": "*"}]})
    with pytest.raises(RecipeError, match=r"'sparsity' must be in \[0.0, 1.0\]"):
        parse_recipe({"version": 1, "edits": [{"op": "prune_magnitude", "target": "*", "sparsity": 1.5}]})


# -- neurons -----------------------------------------------------------------------------


@pytest.mark.parametrize("layer", ["conv2d", "depthwise_conv2d", "dense", "lstm"])
def test_neuron_ops_out_axis(session, layer):
    s, values = session
    k, b = values[f"{layer}/kernel"], values[f"{layer}/bias"]
    idx = [0, 2, b.shape[-1] - 1]
    s.apply(ScaleNeurons(target=layer, neurons=idx, factor=2.0))
    ek, eb = k.copy(), b.copy()
    if layer == "depthwise_conv2d":  # output channel c = k * multiplier + q -> kernel[..., k, q]
        mult = k.shape[-1]
        for c in idx:
            ek[..., c // mult, c % mult] *= np.float32(2.0)
    else:
        ek[..., idx] *= np.float32(2.0)
    eb[idx] *= np.float32(2.0)
    np.testing.assert_array_equal(s.array(f"{layer}/kernel"), ek)
    np.testing.assert_array_equal(s.array(f"{layer}/bias"), eb)


def test_neuron_ops_in_axis_leave_bias(session):
    s, values = session
    s.apply(ZeroNeurons(target="dense", neurons=[1, 31], axis="in"))
    exp = values["dense/kernel"].copy()
    exp[[1, 31], :] = 0
    np.testing.assert_array_equal(s.array("dense/kernel"), exp)
    assert not s.is_edited("dense/bias")
    s.apply(ZeroNeurons(target="conv2d", neurons=[2], axis="in"))
    exp = values["conv2d/kernel"].copy()
    exp[:, :, 2, :] = 0
    np.testing.assert_array_equal(s.array("conv2d/kernel"), exp)
    with pytest.raises(RecipeError, match="has 3 input units"):
        s.apply(ZeroNeurons(target="conv2d", neurons=[3], axis="in"))


def test_embedding_neurons_are_embedding_dimensions(session):
    s, values = session
    s.apply(ZeroNeurons(target="embedding", neurons=[5]))
    assert (s.array("embedding/embeddings")[:, 5] == 0).all()


@pytest.mark.parametrize("norm, ord_", [("l1", 1), ("l2", 2)])
def test_prune_neurons_zeroes_smallest_norms(session, norm, ord_):
    s, values = session
    k = values["conv2d/kernel"]
    norms = neuron_norms(k, ord=ord_)
    expected = sorted(np.argsort(norms, kind="stable")[:3].tolist())
    edit = PruneNeurons(target="conv2d", count=3, norm=norm)
    assert list(edit.chosen_neurons(s.model, s)) == expected
    s.apply(edit)
    got_k, got_b = s.array("conv2d/kernel"), s.array("conv2d/bias")
    zero_cols = [i for i in range(8) if not got_k[..., i].any()]
    assert zero_cols == expected and (got_b[expected] == 0).all()
    s.goto(0)
    s.apply(PruneNeurons(target="dense", fraction=0.25))
    assert sum(not s.array("dense/kernel")[:, i].any() for i in range(10)) == 2


def test_batchnorm_aware_ablation_silences_the_channel():
    cfg = sequential_config([(n, CLASSES[n]) for n in SHAPES])
    s, values = build(config=cfg)
    assert following_batchnorm(s.model, "conv2d") == "batch_normalization"
    assert following_batchnorm(s.model, "dense") is None
    changed = s.apply(ZeroNeurons(target="conv2d", neurons=[1, 6], batchnorm=True))
    assert changed == {"conv2d/kernel", "conv2d/bias", "batch_normalization/gamma", "batch_normalization/beta"}

    def bn(x, c):  # BatchNormalization at inference on channel c
        g, b = s.array("batch_normalization/gamma")[c], s.array("batch_normalization/beta")[c]
        m, v = s.array("batch_normalization/moving_mean")[c], s.array("batch_normalization/moving_variance")[c]
        return g * (x - m) / np.sqrt(v + 1e-3) + b

    for c in (1, 6):
        assert bn(0.0, c) == 0.0  # the ablated filter's zero output stays zero downstream
    assert bn(0.0, 0) != 0.0
    with pytest.raises(RecipeError, match="no BatchNormalization follows layer 'dense'"):
        s.apply(ZeroNeurons(target="dense", neurons=[0], batchnorm=True))


@pytest.mark.parametrize("style", ["keras3", "keras2"])
def test_following_batchnorm_in_functional_configs(style):
    def inbound(src):
        if style == "keras3":
            return [{"args": [{"class_name": "__keras_tensor__", "config": {"keras_history": [src, 0, 0]}}]}]
        return [[[src, 0, 0, {}]]]

    layers = [
        {"class_name": "InputLayer", "config": {"name": "input"}, "inbound_nodes": []},
        {"class_name": "Conv2D", "config": {"name": "conv2d"}, "inbound_nodes": inbound("input")},
        {"class_name": "Dropout", "config": {"name": "drop"}, "inbound_nodes": inbound("conv2d")},
        {
            "class_name": "BatchNormalization",
            "config": {"name": "batch_normalization", "axis": [3] if style == "keras3" else -1},
            "inbound_nodes": inbound("drop"),
        },
        {"class_name": "Conv2D", "config": {"name": "dense"}, "inbound_nodes": inbound("batch_normalization")},
    ]
    s, _ = build(config={"class_name": "Functional", "config": {"layers": layers}})
    assert following_batchnorm(s.model, "conv2d") == "batch_normalization"
    assert following_batchnorm(s.model, "dense") is None


# -- noise, set, reinit -----------------------------------------------------------------


def test_add_noise_is_seed_reproducible_and_has_the_asked_statistics():
    s1, values = build()
    s2, _ = build()
    s1.apply(AddNoise(target="embedding/embeddings", std=0.5, seed=7))
    s2.apply(AddNoise(target="*", std=0.5, seed=7))  # other targets do not change this draw
    a, b = s1.array("embedding/embeddings"), s2.array("embedding/embeddings")
    assert a.tobytes() == b.tobytes()
    noise = a.astype(np.float64) - values["embedding/embeddings"]
    assert abs(noise.mean()) < 0.05 and abs(noise.std() - 0.5) < 0.05
    s1.goto(0)
    s1.apply(AddNoise(target="embedding/embeddings", std=0.5, seed=8))
    assert s1.array("embedding/embeddings").tobytes() != b.tobytes()


def test_set_value(session):
    s, values = session
    s.apply(SetValue(target="conv2d/kernel", index=[1, 2, 0, 5], value=3.5))
    exp = values["conv2d/kernel"].copy()
    exp[1, 2, 0, 5] = 3.5
    np.testing.assert_array_equal(s.array("conv2d/kernel"), exp)
    with pytest.raises(RecipeError, match="outside 'conv2d/kernel'"):
        s.apply(SetValue(target="conv2d/kernel", index=[3, 0, 0, 0], value=1))


def test_compute_fans_matches_keras_convention():
    assert compute_fans((32, 10)) == (32, 10)
    assert compute_fans((3, 3, 16, 8)) == (144, 72)
    assert compute_fans((7,)) == (7, 7)
    assert compute_fans(()) == (1, 1)


@pytest.mark.parametrize("init", INITIALIZERS[:11])  # the rest: tests/test_reinit_initializers.py
def test_reinit_statistics_and_seed(init):
    s, _ = build()
    name = "conv2d/kernel"
    s.apply(Reinit(target=name, initializer=init, seed=3))
    w = s.array(name).astype(np.float64)
    again, _ = build()
    again.apply(Reinit(target=name, initializer=init, seed=3))
    assert again.array(name).tobytes() == s.array(name).tobytes()
    fan_in, fan_out = compute_fans(w.shape)
    expected_std = {
        "glorot_uniform": math.sqrt(2 / (fan_in + fan_out)),
        "glorot_normal": math.sqrt(2 / (fan_in + fan_out)),
        "he_uniform": math.sqrt(2 / fan_in),
        "he_normal": math.sqrt(2 / fan_in),
        "lecun_uniform": math.sqrt(1 / fan_in),
        "lecun_normal": math.sqrt(1 / fan_in),
        "random_normal": 0.05,
        "truncated_normal": 0.05 * 0.8796,
        "random_uniform": 0.1 / math.sqrt(12),
        "zeros": 0.0,
        "ones": 0.0,
    }[init]
    assert w.std() == pytest.approx(expected_std, rel=0.12, abs=1e-12)
    if init == "ones":
        assert (w == 1).all()
    if init == "zeros":
        assert (w == 0).all()
    if init.endswith("uniform") and init != "random_uniform":
        assert np.abs(w).max() <= math.sqrt(3) * expected_std + 1e-6


def test_reinit_rejects_unknown_initializer():
    with pytest.raises(RecipeError, match="unknown initializer 'xavier'"):
        parse_recipe({"version": 1, "edits": [{"op": "reinit", "target": "*", "initializer": "xavier"}]})


# -- targets --------------------------------------------------------------------------------


def test_glob_layer_list_and_whole_model_targets(session):
    s, _ = session
    m = s.model
    assert resolve_tensors("*/kernel", m) == [n for n in ALL if n.endswith("/kernel")]
    assert resolve_tensors("conv*/bias", m) == ["conv2d/bias"]
    assert resolve_tensors("lstm", m) == ["lstm/kernel", "lstm/recurrent_kernel", "lstm/bias"]
    assert resolve_tensors(["dense/bias", "conv2d"], m) == ["conv2d/kernel", "conv2d/bias", "dense/bias"]
    assert resolve_tensors("*", m) == ALL
    with pytest.raises(RecipeError, match="pattern 'nothing\\*' matches no tensor"):
        resolve_tensors("nothing*", m)
    with pytest.raises(RecipeError, match="did you mean 'dense/kernel'"):
        resolve_tensors("dense/kernal", m)
    changed = s.apply(Scale(target="*/bias", factor=0.0))
    assert changed == {n for n in ALL if n.endswith("/bias")}


def test_recipe_step_matching_nothing_names_the_step(session):
    s, _ = session
    recipe = {
        "version": 1,
        "edits": [
            {"op": "scale", "target": "*/kernel", "factor": 0.5},
            {"op": "clip", "target": "conv9*", "min": -1, "max": 1},
        ],
    }
    with pytest.raises(RecipeError, match=r"step 2 \(clip 'conv9\*'\).*matches no tensor"):
        s.apply_recipe(recipe)
    assert not s.edited_names


# -- history toggling --------------------------------------------------------------------------


def test_switching_a_step_off_equals_never_applying_it():
    edits = [
        Clip(target="*/kernel", min=-0.3, max=0.3),
        PruneNeurons(target="dense", count=3),
        AddNoise(target="conv2d", std=0.1, seed=1),
        PruneMagnitude(target="*/kernel", sparsity=0.5, scope="global"),
    ]
    for off in range(len(edits)):
        s, _ = build()
        for e in edits:
            s.apply(e)
        s.set_step_enabled(off, False)
        ref, _ = build()
        for i, e in enumerate(edits):
            if i != off:
                ref.apply(e)
        for n in ALL:
            assert s.array(n).tobytes() == ref.array(n).tobytes(), (off, n)
        assert s.to_recipe() == ref.to_recipe()
        s.set_step_enabled(off, True)
        full, _ = build()
        for e in edits:
            full.apply(e)
        for n in ALL:
            assert s.array(n).tobytes() == full.array(n).tobytes(), (off, n)


def test_toggle_respects_position_and_notifies(session):
    s, values = session
    seen = []
    s.subscribe(seen.append)
    s.apply(Scale(target="dense/kernel", factor=2.0))
    s.apply(Scale(target="conv2d/kernel", factor=3.0))
    s.undo()
    seen.clear()
    assert s.set_step_enabled(0, False) == {"dense/kernel"}
    assert seen == [{"dense/kernel"}] and s.position == 1 and not s.edited_names
    s.redo()
    assert s.edited_names == ["conv2d/kernel"]
    assert s.set_step_enabled(0, False) == set()
    with pytest.raises(IndexError):
        s.set_step_enabled(5, True)


def test_all_ops_round_trip_through_recipes(session):
    s, _ = session
    edits = [
        ClipPercentile(target="conv2d/kernel", lower=1, upper=99),
        PruneMagnitude(target=["dense/kernel", "lstm/kernel"], sparsity=0.4, scope="global"),
        PruneNeurons(target="conv2d", fraction=0.25, norm="l2"),
        ZeroNeurons(target="dense", neurons=[1], axis="in"),
        Add(target="conv*/bias", value=0.1),
        AddNoise(target="embedding", std=0.01, seed=5),
        SetValue(target="dense/bias", index=[0], value=-1.0),
        Reinit(target="lstm/recurrent_kernel", initializer="random_normal", stddev=0.2, seed=4),
    ]
    for e in edits:
        s.apply(e)
    recipe = s.to_recipe()
    assert parse_recipe(recipe) == edits
    replay, _ = build()
    replay.apply_recipe(recipe)
    for n in ALL:
        assert replay.array(n).tobytes() == s.array(n).tobytes(), n


# -- diffs, sparsity, export -----------------------------------------------------------------

from weightlab.core.diff import (  # noqa: E402
    changed_mask,
    compare_models,
    difference,
    export_tensor,
    sparsity,
    tensor_diff,
)
from weightlab.core.errors import WeightLabError  # noqa: E402


def test_tensor_diff_against_numpy(session):
    s, values = session
    s.apply(PruneMagnitude(target="dense/kernel", sparsity=0.3))
    a, b = values["dense/kernel"], s.array("dense/kernel")
    d = tensor_diff("dense/kernel", a, b)
    assert d.changed == np.count_nonzero(a != b) == math.floor(0.3 * a.size)
    assert d.fraction_changed == d.changed / a.size
    assert d.relative_l2 == pytest.approx(np.linalg.norm(b.astype(np.float64) - a) / np.linalg.norm(a.astype(np.float64)))
    assert d.max_abs == pytest.approx(np.abs(a[a != b]).max())
    np.testing.assert_array_equal(changed_mask(a, b), a != b)
    np.testing.assert_array_equal(difference(a, b), b.astype(np.float64) - a)
    nan = np.array([np.nan, 1.0])
    assert tensor_diff("x", nan, nan.copy()).changed == 0


def test_blocked_diff_and_histogram_equal_whole_array_numpy(monkeypatch):
    """Blocks of 1,000 entries (not a divisor of the size) give the whole-array numbers."""
    import weightlab.core.diff as diff_mod

    rng = np.random.default_rng(3)
    a = rng.normal(size=(37, 211)).astype(np.float32)
    b = a.copy()
    flat = b.reshape(-1)
    idx = rng.choice(flat.size, flat.size // 4, replace=False)
    flat[idx] += rng.normal(size=idx.size).astype(np.float32)
    flat[idx[0]] = np.inf  # an infinite change counts as changed, not in the histogram
    monkeypatch.setattr(diff_mod, "_BLOCK", 1000)
    d = diff_mod.tensor_diff("t", a, b)
    mask = a != b
    ref = np.where(mask, b.astype(np.float64) - a, 0.0)
    assert d.changed == int(mask.sum()) == idx.size
    assert d.max_abs == np.inf
    finite = np.isfinite(ref)
    counts, edges = diff_mod.diff_histogram(a, b, 50)
    expected_counts, expected_edges = np.histogram(ref[mask & finite], bins=50)
    np.testing.assert_array_equal(counts, expected_counts)
    np.testing.assert_array_equal(edges, expected_edges)
    assert diff_mod.diff_histogram(a, a.copy(), 50) is None
    b2 = a.copy()  # the finite edits only: relative change against numpy
    b2.reshape(-1)[idx[1:]] = b.reshape(-1)[idx[1:]]
    d2 = diff_mod.tensor_diff("t", a, b2)
    r = np.where(a != b2, b2.astype(np.float64) - a, 0.0)
    assert d2.relative_l2 == pytest.approx(np.linalg.norm(r) / np.linalg.norm(a.astype(np.float64)), rel=1e-12)


def test_compare_models_sorts_by_relative_change():
    s1, _ = build(seed=0)
    s2, _ = build(seed=0)
    s2.apply(Scale(target="dense/kernel", factor=1.5))
    s2.apply(Scale(target="conv2d/bias", factor=1.1))
    diffs = compare_models(s1.model, s2.model, s1.array, s2.array)
    assert [d.name for d in diffs[:2]] == ["dense/kernel", "conv2d/bias"]
    assert diffs[0].relative_l2 == pytest.approx(0.5, rel=1e-6)
    assert all(d.changed == 0 for d in diffs[2:])


def test_compare_models_refuses_other_architectures():
    s1, _ = build()
    other = ModelFile.from_arrays({"x/kernel": np.zeros((2, 2), np.float32)}, "other.keras", classes={"x": "Dense"})
    with pytest.raises(WeightLabError, match="not the same architecture"):
        compare_models(s1.model, other)


def test_sparsity_per_tensor_layer_and_model(session):
    s, values = session
    s.apply(ZeroNeurons(target="dense", neurons=[0, 1]))
    sp = sparsity(s.model, s.array)
    assert sp["dense/kernel"] == pytest.approx(0.2) and sp["dense/bias"] == pytest.approx(0.2)
    assert sp["dense"] == pytest.approx(0.2)
    total = sum(v.size for v in values.values())
    assert sp[""] == pytest.approx((0.2 * 330) / total)


def test_export_tensor_npy_and_csv(tmp_path, session):
    s, values = session
    k = values["conv2d/kernel"]
    np.testing.assert_array_equal(np.load(export_tensor(k, tmp_path / "k.npy")), k)
    rows = np.loadtxt(export_tensor(k, tmp_path / "k.csv"), delimiter=",", dtype=np.float32)
    np.testing.assert_array_equal(rows, k.reshape(-1, 8))
    with pytest.raises(WeightLabError, match="export a tensor as .npy or .csv"):
        export_tensor(k, tmp_path / "k.txt")
    with pytest.raises(WeightLabError, match="cannot write"):
        export_tensor(k, tmp_path / "missing-dir" / "k.npy")
