"""reinit with every Keras built-in initializer and its arguments, against Keras' own initializers.

The draws come from NumPy (seeded per tensor), Keras' from TensorFlow: they are
compared in distribution (two-sample Kolmogorov-Smirnov, moments, bounds) on
large shapes; constant, zeros, ones and identity are compared exactly, and
orthogonal also by Q^T Q = gain^2 I.
"""

from __future__ import annotations

import json
import math
import zlib

import numpy as np
import pytest

from weightlab.core.edits import (
    INITIALIZER_PARAMS,
    INITIALIZERS,
    Reinit,
    compute_fans,
    edit_from_dict,
)
from weightlab.core.errors import RecipeError
from weightlab.core.model import ModelFile
from weightlab.core.recipe import load_recipe, parse_recipe, recipe_dict, save_recipe
from weightlab.core.session import EditSession

SHAPES = {
    "dense/kernel": (300, 400),
    "wide/kernel": (200, 600),  # fewer rows than columns: orthogonal rows
    "conv/kernel": (5, 5, 64, 128),
    "conv/bias": (128,),
    "small/kernel": (5, 7),
}


def _session(shapes=SHAPES, dtype="float32") -> EditSession:
    values = {name: np.zeros(shape, dtype) for name, shape in shapes.items()}
    return EditSession(ModelFile.from_arrays(values, "m.keras", format="keras"))


def draw(initializer: str, name: str = "dense/kernel", seed: int = 1, **args) -> np.ndarray:
    s = _session({name: SHAPES[name]})
    s.apply(Reinit(target=name, initializer=initializer, seed=seed, **args))
    return s.array(name)


@pytest.fixture(scope="module")
def keras_initializers():
    pytest.importorskip("tensorflow")
    import keras

    return keras.initializers


def keras_draw(keras_initializers, cls: str, shape, seed: int = 7, **args) -> np.ndarray:
    init = getattr(keras_initializers, cls)(seed=seed, **args) if cls not in _UNSEEDED else None
    if init is None:
        init = getattr(keras_initializers, cls)(**args)
    return np.asarray(init(shape=shape, dtype="float32"))


_UNSEEDED = {"Zeros", "Ones", "Constant", "Identity"}

# (our initializer and arguments, Keras' class and arguments, tensor)
RANDOM_CASES = [
    ("random_normal", {"mean": 0.1, "stddev": 0.01}, "RandomNormal", "dense/kernel"),  # the issue's
    ("random_normal", {}, "RandomNormal", "dense/kernel"),
    ("truncated_normal", {"mean": -0.2, "stddev": 0.5}, "TruncatedNormal", "dense/kernel"),
    ("truncated_normal", {}, "TruncatedNormal", "conv/kernel"),
    ("random_uniform", {"minval": -0.3, "maxval": 0.7}, "RandomUniform", "dense/kernel"),
    ("random_uniform", {}, "RandomUniform", "conv/kernel"),
    ("variance_scaling", {}, "VarianceScaling", "conv/kernel"),
    (
        "variance_scaling",
        {"scale": 2.0, "mode": "fan_out", "distribution": "uniform"},
        "VarianceScaling",
        "conv/kernel",
    ),
    (
        "variance_scaling",
        {"scale": 0.5, "mode": "fan_avg", "distribution": "truncated_normal"},
        "VarianceScaling",
        "dense/kernel",
    ),
    (
        "variance_scaling",
        {"scale": 3.0, "mode": "fan_in", "distribution": "untruncated_normal"},
        "VarianceScaling",
        "conv/kernel",
    ),
    ("glorot_uniform", {}, "GlorotUniform", "conv/kernel"),
    ("glorot_normal", {}, "GlorotNormal", "dense/kernel"),
    ("he_uniform", {}, "HeUniform", "dense/kernel"),
    ("he_normal", {}, "HeNormal", "conv/kernel"),
    ("lecun_uniform", {}, "LecunUniform", "conv/kernel"),
    ("lecun_normal", {}, "LecunNormal", "dense/kernel"),
    ("orthogonal", {"gain": 2.0}, "Orthogonal", "dense/kernel"),
    ("orthogonal", {}, "Orthogonal", "wide/kernel"),
    ("orthogonal", {"gain": 0.5}, "Orthogonal", "conv/kernel"),
]


def _expected_spread(init: str, args: dict, shape) -> tuple[float, float, float | None]:
    """(mean, standard deviation, bound on |w - mean| or None) of Keras' formula for ``init``."""
    if init in ("random_normal", "truncated_normal"):
        mean, sd = args.get("mean", 0.0), args.get("stddev", 0.05)
        if init == "truncated_normal":
            return mean, sd * 0.87962566103423978, 2 * sd
        return mean, sd, None
    if init == "random_uniform":
        lo, hi = args.get("minval", -0.05), args.get("maxval", 0.05)
        return (lo + hi) / 2, (hi - lo) / math.sqrt(12), (hi - lo) / 2
    if init == "orthogonal":
        rows = math.prod(shape[:-1])
        return 0.0, args.get("gain", 1.0) / math.sqrt(max(rows, shape[-1])), None
    presets = {
        "glorot_uniform": (1.0, "fan_avg", "uniform"),
        "glorot_normal": (1.0, "fan_avg", "truncated_normal"),
        "he_uniform": (2.0, "fan_in", "uniform"),
        "he_normal": (2.0, "fan_in", "truncated_normal"),
        "lecun_uniform": (1.0, "fan_in", "uniform"),
        "lecun_normal": (1.0, "fan_in", "truncated_normal"),
    }
    scale, mode, dist = presets.get(init) or (
        args.get("scale", 1.0),
        args.get("mode", "fan_in"),
        args.get("distribution", "truncated_normal"),
    )
    fan_in, fan_out = compute_fans(shape)
    n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
    sd = math.sqrt(scale / n)
    bound = {"uniform": math.sqrt(3) * sd, "truncated_normal": 2 * sd / 0.87962566103423978}.get(dist)
    return 0.0, sd, bound


@pytest.mark.parametrize(
    ("init", "args", "keras_cls", "name"),
    RANDOM_CASES,
    ids=[f"{c[0]}-{i}" for i, c in enumerate(RANDOM_CASES)],
)
def test_random_draws_follow_keras_distribution(keras_initializers, init, args, keras_cls, name):
    stats = pytest.importorskip("scipy.stats")
    shape = SHAPES[name]
    ours = draw(init, name, seed=3, **args).astype(np.float64).ravel()
    theirs = keras_draw(keras_initializers, keras_cls, shape, **args).astype(np.float64).ravel()
    assert ours.size == theirs.size == math.prod(shape)
    # Same distribution: a two-sample KS test on ~10^5 values each (both draws seeded, so deterministic).
    ks = stats.ks_2samp(ours, theirs)
    assert ks.pvalue > 1e-3, (ks.statistic, ks.pvalue)
    # ... with the moments of Keras' formula, within sampling error (6 standard errors).
    mean, sd, bound = _expected_spread(init, args, shape)
    n = ours.size
    for sample in (ours, theirs):
        assert abs(sample.mean() - mean) <= 6 * sd / math.sqrt(n) + 1e-7, (sample.mean(), mean)
        assert sample.std() == pytest.approx(sd, rel=6 / math.sqrt(2 * n) + 1e-6)
        if bound is not None:
            assert np.abs(sample - mean).max() <= bound * (1 + 1e-6)
            # ... and the bound is reached (a uniform's limits, a truncation's cut), not a smaller one.
            assert np.abs(sample - mean).max() >= bound * 0.99


def test_truncated_normal_is_cut_at_two_stddev_and_uniform_at_its_limits():
    w = draw("truncated_normal", mean=0.3, stddev=0.1).astype(np.float64)
    assert w.min() >= 0.3 - 0.2 - 1e-6 and w.max() <= 0.3 + 0.2 + 1e-6
    assert w.min() < 0.3 - 0.19 and w.max() > 0.3 + 0.19
    u = draw("random_uniform", minval=-0.3, maxval=0.7).astype(np.float64)
    assert u.min() >= -0.3 and u.max() < 0.7
    assert u.min() < -0.299 and u.max() > 0.699


@pytest.mark.parametrize(
    ("name", "gain"), [("dense/kernel", 2.0), ("wide/kernel", 1.0), ("conv/kernel", 0.5)]
)
def test_orthogonal_is_orthogonal_times_gain(name, gain):
    w = draw("orthogonal", name, gain=gain).astype(np.float64)
    shape = SHAPES[name]
    assert w.shape == shape
    m = w.reshape(-1, shape[-1])
    rows, cols = m.shape
    gram = m.T @ m if rows >= cols else m @ m.T
    np.testing.assert_allclose(gram, gain**2 * np.eye(min(rows, cols)), atol=2e-5 * gain**2)
    # Keras' construction, not merely some orthogonal matrix: Q of the QR decomposition of the
    # (max, min) normal draw, made unique by R's diagonal being positive (Q^T A = R).
    a = np.random.default_rng([1, zlib.crc32(name.encode())]).normal(
        0.0, 1.0, (max(rows, cols), min(rows, cols))
    )
    q = (m if rows >= cols else m.T) / gain
    r = q.T @ a
    np.testing.assert_allclose(np.tril(r, -1), 0.0, atol=1e-4)
    assert np.all(np.diag(r) > 0)


@pytest.mark.parametrize(
    ("init", "args", "keras_cls", "shape"),
    [
        ("zeros", {}, "Zeros", (300, 400)),
        ("ones", {}, "Ones", (5, 5, 64, 128)),
        ("constant", {"value": 0.37}, "Constant", (300, 400)),
        ("constant", {}, "Constant", (128,)),
        ("identity", {"gain": 0.5}, "Identity", (5, 7)),
        ("identity", {}, "Identity", (300, 400)),
    ],
)
def test_exact_initializers_equal_keras(keras_initializers, init, args, keras_cls, shape):
    name = next(n for n, s in SHAPES.items() if s == shape)
    ours = draw(init, name, **args)
    theirs = keras_draw(keras_initializers, keras_cls, shape, **args)
    assert ours.dtype == theirs.dtype == np.float32
    assert ours.tobytes() == theirs.tobytes()


def test_identity_on_a_tall_matrix_and_float64():
    s = _session({"t/kernel": (6, 3)}, dtype="float64")
    s.apply(Reinit(target="t/kernel", initializer="identity", gain=3.0))
    assert s.array("t/kernel").dtype == np.float64
    np.testing.assert_array_equal(s.array("t/kernel"), 3.0 * np.eye(6, 3))


@pytest.mark.parametrize(
    ("init", "args", "same_as"),
    [
        ("variance_scaling", {}, "lecun_normal"),  # Keras' defaults
        ("variance_scaling", {"scale": 2.0, "mode": "fan_in", "distribution": "uniform"}, "he_uniform"),
        ("variance_scaling", {"scale": 1.0, "mode": "fan_avg", "distribution": "normal"}, "glorot_normal"),
        ("variance_scaling", {"scale": 1.0, "mode": "fan_avg", "distribution": "uniform"}, "glorot_uniform"),
    ],
)
def test_presets_are_variance_scaling_bit_for_bit(init, args, same_as):
    assert (
        draw(init, "conv/kernel", seed=5, **args).tobytes() == draw(same_as, "conv/kernel", seed=5).tobytes()
    )


def test_old_recipes_draw_what_they_drew():
    """Steps valid before the new initializers draw the same numbers: NumPy's PCG64 on (seed, crc32(name))."""
    name, shape = "dense/kernel", SHAPES["dense/kernel"]

    def rng(seed):
        return np.random.default_rng([seed, zlib.crc32(name.encode())])

    steps = {
        "random_normal": ({"stddev": 0.2, "seed": 4}, rng(4).normal(0.0, 0.2, shape)),
        "random_uniform": ({"minval": -1.0, "seed": 9}, rng(9).uniform(-1.0, 0.05, shape)),
        "glorot_uniform": ({"seed": 2}, rng(2).uniform(-math.sqrt(6 / 700), math.sqrt(6 / 700), shape)),
    }
    for init, (params, expected) in steps.items():
        s = _session({name: shape})
        s.apply_all(
            parse_recipe(
                {"version": 1, "edits": [{"op": "reinit", "target": name, "initializer": init, **params}]}
            )
        )
        assert s.array(name).tobytes() == expected.astype(np.float32).tobytes(), init


@pytest.mark.parametrize("init", INITIALIZERS)
def test_same_seed_same_bits_other_seed_other_values(init):
    name = "small/kernel"
    a, b, c = draw(init, name, seed=11), draw(init, name, seed=11), draw(init, name, seed=12)
    assert a.tobytes() == b.tobytes()
    if init not in ("zeros", "ones", "constant", "identity"):
        assert a.tobytes() != c.tobytes()
    else:
        assert a.tobytes() == c.tobytes()  # nothing random: the seed does not matter


def test_a_tensor_draws_the_same_whatever_else_is_targeted():
    one = _session()
    one.apply(Reinit(target="dense/kernel", initializer="orthogonal", gain=1.5, seed=3))
    several = _session()
    several.apply(
        Reinit(
            target=["dense/kernel", "wide/kernel", "conv/kernel"], initializer="orthogonal", gain=1.5, seed=3
        )
    )
    assert one.array("dense/kernel").tobytes() == several.array("dense/kernel").tobytes()
    assert several.array("wide/kernel").tobytes() != several.array("dense/kernel")[:, :].tobytes()


def test_keras_names_and_aliases_are_accepted_and_stored_canonically():
    r = Reinit(target="x", initializer="RandomNormal", mean=0.1, stddev=0.01)
    assert r.initializer == "random_normal"
    assert r == Reinit(target="x", initializer="random_normal", mean=0.1, stddev=0.01)
    assert r.to_dict() == {
        "op": "reinit",
        "target": "x",
        "initializer": "random_normal",
        "mean": 0.1,
        "stddev": 0.01,
    }
    assert Reinit(target="x", initializer="normal").initializer == "random_normal"
    assert Reinit(target="x", initializer="uniform").initializer == "random_uniform"
    assert Reinit(target="x", initializer="VarianceScaling").initializer == "variance_scaling"
    assert Reinit(target="x", initializer="OrthogonalInitializer").initializer == "orthogonal"
    # Keras' distribution alias: "normal" is a truncated normal.
    vs = Reinit(target="x", initializer="variance_scaling", distribution="normal")
    assert vs.distribution == "truncated_normal"
    assert vs.describe() == "re-initialise x with variance_scaling(distribution=truncated_normal) (seed 0)"
    assert r.describe() == "re-initialise x with random_normal(mean=0.1, stddev=0.01) (seed 0)"


def test_recipe_round_trip_replays_the_same_weights(tmp_path):
    edits = [
        Reinit(target="dense/kernel", initializer="random_normal", mean=0.1, stddev=0.01, seed=1),
        Reinit(
            target="conv/kernel",
            initializer="variance_scaling",
            scale=2.0,
            mode="fan_out",
            distribution="untruncated_normal",
            seed=2,
        ),
        Reinit(target="wide/kernel", initializer="orthogonal", gain=1.3, seed=3),
        Reinit(target="small/kernel", initializer="identity", gain=0.5),
        Reinit(target="conv/bias", initializer="constant", value=-0.25),
        Reinit(target="dense/kernel", initializer="TruncatedNormal", stddev=0.02, seed=4),
    ]
    path = tmp_path / "r.json"
    save_recipe(recipe_dict(edits, source="m.keras"), path)
    stored = json.loads(path.read_text(encoding="utf-8"))["edits"]
    assert stored[1] == {
        "op": "reinit",
        "target": "conv/kernel",
        "initializer": "variance_scaling",
        "seed": 2,
        "scale": 2.0,
        "mode": "fan_out",
        "distribution": "untruncated_normal",
    }
    assert stored[5]["initializer"] == "truncated_normal"
    loaded = load_recipe(path)
    assert loaded == edits
    first, again = _session(), _session()
    first.apply_all(edits)
    again.apply_all(loaded)
    for name in SHAPES:
        assert first.array(name).tobytes() == again.array(name).tobytes(), name
    assert np.all(first.array("conv/bias") == np.float32(-0.25))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ({"initializer": "xavier"}, "unknown initializer 'xavier'; known: glorot_uniform"),
        (
            {"initializer": "glorot_uniform", "stddev": 0.1},
            "glorot_uniform does not take stddev; it takes no argument but seed",
        ),
        (
            {"initializer": "random_normal", "minval": -1.0, "maxval": 1.0},
            "random_normal does not take minval, maxval; it takes mean, stddev",
        ),
        ({"initializer": "orthogonal", "scale": 2.0}, "orthogonal does not take scale; it takes gain"),
        ({"initializer": "random_normal", "stddev": -0.1}, "'stddev' must be in [0.0, inf]"),
        (
            {"initializer": "random_uniform", "minval": 1.0, "maxval": 0.5},
            "minval must be <= maxval; got 1.0 > 0.5",
        ),
        ({"initializer": "random_uniform", "minval": 0.2}, "minval must be <= maxval; got 0.2 > 0.05"),
        ({"initializer": "variance_scaling", "scale": 0}, "scale must be > 0"),
        ({"initializer": "variance_scaling", "scale": -2.0}, "scale must be > 0"),
        (
            {"initializer": "variance_scaling", "mode": "fan_sum"},
            "mode must be one of fan_in, fan_out, fan_avg; got 'fan_sum'",
        ),
        (
            {"initializer": "variance_scaling", "distribution": "cauchy"},
            "distribution must be one of truncated_normal, untruncated_normal, uniform",
        ),
        ({"initializer": "constant", "value": "1"}, "'value' must be a number"),
        ({"initializer": "constant", "value": float("nan")}, "'value' must be a finite number"),
        ({"initializer": "orthogonal", "gain": float("inf")}, "'gain' must be a finite number"),
        ({"initializer": "identity", "gain": True}, "'gain' must be a number"),
    ],
)
def test_bad_arguments_say_what_is_wrong(step, message):
    with pytest.raises(RecipeError) as info:
        parse_recipe({"version": 1, "edits": [{"op": "reinit", "target": "dense/kernel", **step}]}, "r.json")
    text = str(info.value)
    assert message in text and "step 1" in text and "reinit" in text, text


def test_bad_arguments_from_python_are_value_errors():
    with pytest.raises(ValueError, match="scale must be > 0"):
        Reinit(target="x", initializer="variance_scaling", scale=0.0)
    with pytest.raises(ValueError, match="gain must be a finite number"):
        Reinit(target="x", initializer="identity", gain=float("nan"))
    with pytest.raises(ValueError, match="zeros does not take value"):
        Reinit(target="x", initializer="zeros", value=1.0)


@pytest.mark.parametrize(
    ("init", "name", "message"),
    [
        (
            "identity",
            "conv/kernel",
            "identity needs a 2-D tensor (a Dense kernel); 'conv/kernel' has shape (5, 5, 64, 128)",
        ),
        (
            "identity",
            "conv/bias",
            "identity needs a 2-D tensor (a Dense kernel); 'conv/bias' has shape (128,)",
        ),
        (
            "orthogonal",
            "conv/bias",
            "orthogonal needs a tensor of at least 2 dimensions; 'conv/bias' has shape",
        ),
    ],
)
def test_shapes_an_initializer_cannot_fill_are_refused_by_name(init, name, message):
    s = _session()
    before = {n: s.array(n).tobytes() for n in SHAPES}
    with pytest.raises(RecipeError) as info:
        s.apply(Reinit(target=name, initializer=init))
    assert message in str(info.value)
    # A glob that reaches such a tensor is refused as a whole, nothing half-done.
    with pytest.raises(RecipeError, match=init):
        s.apply(Reinit(target="*", initializer=init))
    assert {n: s.array(n).tobytes() for n in SHAPES} == before


def test_every_initializer_has_its_arguments_listed():
    assert set(INITIALIZER_PARAMS) == set(INITIALIZERS)
    assert len(INITIALIZERS) == 15
    for init, takes in INITIALIZER_PARAMS.items():
        step = {"op": "reinit", "target": "x", "initializer": init}
        defaults = {"mode": "fan_avg", "distribution": "uniform"}
        edit = edit_from_dict({**step, **{a: defaults.get(a, 0.5) for a in takes}})
        assert all(getattr(edit, a) is not None for a in takes)


def test_numpy_scalars_are_taken_as_floats_and_stay_json():
    r = Reinit(target="dense/kernel", initializer="random_normal", mean=np.float32(0.5), stddev=np.int64(2))
    assert type(r.mean) is float and type(r.stddev) is float
    assert json.loads(json.dumps(r.to_dict()))["stddev"] == 2.0
    assert r == Reinit(
        target="dense/kernel", initializer="random_normal", mean=float(np.float32(0.5)), stddev=2.0
    )
