"""Learning-rate and sparsity schedules (weightlab.core.schedules) against Keras' and TF-MOT's own objects."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from weightlab.core.schedules import LR_SCHEDULES, SPARSITY_SCHEDULES, LRSchedule, SparsitySchedule

# Steps at which schedules are compared: the start, every boundary/decay end
# and its neighbours, and a spread far past the end.
STEPS = np.unique(
    np.concatenate(
        [
            np.arange(0, 60),
            np.arange(95, 106),
            np.arange(195, 206),
            np.arange(295, 306),
            np.arange(995, 1006),
            np.linspace(0, 25_000, 97).astype(np.int64),
        ]
    )
)

LR_CASES = [
    ("exponential_decay", {"decay_steps": 100, "decay_rate": 0.9}),
    ("exponential_decay", {"decay_steps": 100, "decay_rate": 0.5, "staircase": True}),
    ("exponential_decay", {"decay_steps": 10_000, "decay_rate": 0.9}),  # the issue's schedule
    ("exponential_decay", {"decay_steps": 7000, "decay_rate": 1.2}),  # a rate that grows
    ("piecewise_constant_decay", {"boundaries": [100, 200], "values": [0.1, 0.01, 0.001]}),
    ("piecewise_constant_decay", {"boundaries": [0], "values": [1.0, 0.5]}),
    ("piecewise_constant_decay", {"boundaries": [3, 50, 300, 1000], "values": [0.5, 0.4, 0.3, 0.2, 0.1]}),
    ("cosine_decay", {"decay_steps": 300}),
    ("cosine_decay", {"decay_steps": 1000, "alpha": 0.1}),
    ("cosine_decay", {"decay_steps": 300, "warmup_target": 0.01, "warmup_steps": 100}),
    ("cosine_decay", {"decay_steps": 300, "alpha": 0.2, "warmup_target": 0.1, "warmup_steps": 1}),
    ("cosine_decay", {"decay_steps": 50, "warmup_target": 0.05, "warmup_steps": 0}),
    ("polynomial_decay", {"decay_steps": 300}),
    ("polynomial_decay", {"decay_steps": 100, "end_learning_rate": 0.0005, "power": 0.5}),
    ("polynomial_decay", {"decay_steps": 100, "end_learning_rate": 0.0001, "power": 2.0, "cycle": True}),
    ("polynomial_decay", {"decay_steps": 1000, "end_learning_rate": 0.0, "power": 1.0, "cycle": True}),
]


@pytest.fixture(scope="module")
def keras_schedules():
    pytest.importorskip("tensorflow")
    import keras

    return keras.optimizers.schedules


@pytest.mark.parametrize(("kind", "params"), LR_CASES, ids=[f"{k}-{i}" for i, (k, _) in enumerate(LR_CASES)])
@pytest.mark.parametrize("initial_lr", [0.001, 0.1])
def test_lr_values_equal_keras(keras_schedules, kind, params, initial_lr):
    schedule = LRSchedule(kind, params)
    keras_obj = keras_schedules.deserialize(schedule.keras_config(initial_lr))
    assert type(keras_obj).__name__ == schedule.keras_config(initial_lr)["class_name"]
    # The optimizer calls its schedule with its int64 ``iterations``.
    expected = np.array([float(keras_obj(np.int64(s))) for s in STEPS])
    ours = schedule.values(STEPS, initial_lr)
    assert ours.dtype == np.float64 and ours.shape == STEPS.shape
    assert np.all(np.isfinite(expected)) and np.all(expected >= 0)  # nothing compared vacuously
    # Keras computes in float32 (eps 1.2e-7): each value within 1e-6 relative, or 1e-7 of the
    # schedule's scale near zero (a cosine's end); ExponentialDecay's rate ** (step / decay_steps)
    # magnifies float32's error of the exponent by |ln(lr / lr0)| (1.6e-6 at 250 decays of 0.9), so
    # its bound grows with that.
    scale = max([initial_lr, *params.get("values", ()), params.get("warmup_target") or 0.0])
    growth = np.maximum(1.0, np.abs(np.log(np.maximum(expected, 1e-300) / scale)))
    assert np.all(np.abs(ours - expected) <= 1e-6 * growth * np.abs(expected) + 1e-7 * scale), np.max(
        np.abs(ours - expected) / (growth * np.abs(expected) + 1e-300)
    )
    # One step at a time gives the same as the array.
    assert float(schedule.values(int(STEPS[7]), initial_lr)) == ours[7]


def test_lr_values_are_not_trivially_constant():
    """The comparison above would pass for a schedule stuck at one value; these change where they should."""
    exp = LRSchedule("exponential_decay", {"decay_steps": 100, "decay_rate": 0.5, "staircase": True})
    assert exp.values([0, 99, 100, 199, 200], 1.0).tolist() == [1.0, 1.0, 0.5, 0.5, 0.25]
    smooth = LRSchedule("exponential_decay", {"decay_steps": 100, "decay_rate": 0.5})
    assert smooth.values(50, 1.0) == pytest.approx(2**-0.5)
    pw = LRSchedule("piecewise_constant_decay", {"boundaries": [100, 200], "values": [0.1, 0.01, 0.001]})
    # Keras: values[0] while step <= boundaries[0] (the boundary itself included).
    assert pw.values([0, 100, 101, 200, 201, 10**6], 123.0).tolist() == [0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
    cos = LRSchedule(
        "cosine_decay", {"decay_steps": 100, "alpha": 0.1, "warmup_target": 1.0, "warmup_steps": 10}
    )
    assert cos.values([0, 5, 10, 60, 110, 500], 0.0).tolist() == pytest.approx(
        [0.0, 0.5, 1.0, 0.55, 0.1, 0.1]
    )
    poly = LRSchedule("polynomial_decay", {"decay_steps": 10, "end_learning_rate": 0.0, "cycle": True})
    # With cycle the decay restarts at each multiple of decay_steps (step 10 ends the first cycle).
    assert poly.values([0, 5, 10, 11, 15, 20], 1.0).tolist() == pytest.approx(
        [1.0, 0.5, 0.0, 0.45, 0.25, 0.0]
    )


def test_issue_schedule_describe_and_keras_config():
    s = LRSchedule.parse("exponential_decay:decay_steps=10000,decay_rate=0.9")
    assert s.describe(0.001) == "ExponentialDecay(0.001, decay_steps=10000, decay_rate=0.9)"
    assert s.keras_config(0.001) == {
        "class_name": "ExponentialDecay",
        "config": {
            "initial_learning_rate": 0.001,
            "decay_steps": 10000,
            "decay_rate": 0.9,
            "staircase": False,
        },
    }
    assert LRSchedule("polynomial_decay", {"decay_steps": 5, "cycle": True}).describe(0.1) == (
        "PolynomialDecay(0.1, decay_steps=5, cycle=True)"
    )
    pw = LRSchedule.parse("piecewise_constant_decay:boundaries=100/200,values=0.1/0.01/0.001")
    assert pw.describe(0.5) == "PiecewiseConstantDecay(boundaries=[100, 200], values=[0.1, 0.01, 0.001])"
    assert "initial_learning_rate" not in pw.keras_config(0.5)["config"]


@pytest.mark.parametrize(("kind", "params"), LR_CASES, ids=[f"{k}-{i}" for i, (k, _) in enumerate(LR_CASES)])
def test_lr_round_trips(kind, params):
    s = LRSchedule(kind, params)
    d = s.to_dict()
    assert d["kind"] == kind
    assert json.loads(json.dumps(d)) == d  # plain JSON values
    assert LRSchedule.from_dict(d) == s
    assert LRSchedule.from_dict(json.loads(json.dumps(d))) == s
    text = (
        kind
        + ":"
        + ",".join(
            f"{k}={'/'.join(map(str, v)) if isinstance(v, list) else str(v).lower() if isinstance(v, bool) else v}"
            for k, v in d.items()
            if k != "kind"
        )
    )
    assert LRSchedule.parse(text) == s
    assert pickle.loads(pickle.dumps(s)) == s
    assert hash(LRSchedule.from_dict(d)) == hash(s)
    # Defaults are filled in, so a partial and a full description are the same schedule.
    assert set(s.params) == set(d) - {"kind"}


def test_lr_params_are_read_only_and_class_names_accepted():
    s = LRSchedule("ExponentialDecay", {"decay_steps": 1e4, "decay_rate": 0.9})
    assert s.kind == "exponential_decay" and s.params["decay_steps"] == 10000
    assert isinstance(s.params["decay_steps"], int)
    with pytest.raises(TypeError):
        s.params["decay_rate"] = 0.5  # type: ignore[index]
    # The caller's dict is copied, not kept.
    params = {"decay_steps": 10, "decay_rate": 0.9}
    t = LRSchedule("exponential_decay", params)
    params["decay_rate"] = 0.1
    assert t.params["decay_rate"] == 0.9
    assert LRSchedule.parse("cosine_decay:decay_steps=10,warmup_target=none").params["warmup_target"] is None


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: LRSchedule("step_decay", {}),
            "unknown learning-rate schedule 'step_decay'; known: exponential_decay",
        ),
        (lambda: LRSchedule("exponential_decay", {"decay_rate": 0.9}), "missing parameter(s) decay_steps"),
        (
            lambda: LRSchedule("exponential_decay", {"decay_steps": 1, "decay_rate": 0.9, "rate": 1}),
            "unknown parameter(s) rate; expected decay_steps, decay_rate, staircase",
        ),
        (
            lambda: LRSchedule("exponential_decay", {"decay_steps": 0, "decay_rate": 0.9}),
            "decay_steps must be a positive integer; got 0",
        ),
        (
            lambda: LRSchedule("cosine_decay", {"decay_steps": -5}),
            "decay_steps must be a positive integer; got -5",
        ),
        (
            lambda: LRSchedule("polynomial_decay", {"decay_steps": 2.5}),
            "decay_steps must be a positive integer; got 2.5",
        ),
        (
            lambda: LRSchedule("exponential_decay", {"decay_steps": 10, "decay_rate": 0}),
            "decay_rate must be a finite number > 0; got 0",
        ),
        (
            lambda: LRSchedule("exponential_decay", {"decay_steps": 10, "decay_rate": float("nan")}),
            "decay_rate must be a finite number > 0",
        ),
        (
            lambda: LRSchedule(
                "exponential_decay", {"decay_steps": 10, "decay_rate": 0.9, "staircase": "yes"}
            ),
            "staircase must be true or false; got 'yes'",
        ),
        (
            lambda: LRSchedule("piecewise_constant_decay", {"boundaries": [200, 100], "values": [1, 2, 3]}),
            "boundaries must be strictly increasing; got [200, 100]",
        ),
        (
            lambda: LRSchedule("piecewise_constant_decay", {"boundaries": [100, 100], "values": [1, 2, 3]}),
            "boundaries must be strictly increasing",
        ),
        (
            lambda: LRSchedule("piecewise_constant_decay", {"boundaries": [100, 200], "values": [0.1, 0.01]}),
            "values must have one more entry than boundaries (2 boundaries, so 3 values); got 2 values",
        ),
        (
            lambda: LRSchedule("piecewise_constant_decay", {"boundaries": [], "values": [0.1]}),
            "boundaries must be a list of non-negative integers (at least one)",
        ),
        (
            lambda: LRSchedule("piecewise_constant_decay", {"boundaries": [1.5], "values": [0.1, 0.2]}),
            "boundaries must be a list of non-negative integers",
        ),
        (
            lambda: LRSchedule("cosine_decay", {"decay_steps": 10, "alpha": 2.0}),
            "alpha must be a number in [0, 1]; got 2.0",
        ),
        (
            lambda: LRSchedule("cosine_decay", {"decay_steps": 10, "warmup_steps": -1}),
            "warmup_steps must be a non-negative integer; got -1",
        ),
        (
            lambda: LRSchedule("polynomial_decay", {"decay_steps": 10, "power": 0}),
            "power must be a finite number > 0",
        ),
        (lambda: LRSchedule.from_dict([1, 2]), "schedule: expected an object with a 'kind'"),
        (
            lambda: LRSchedule.from_dict({"decay_steps": 1}, source="r.json: step 2"),
            "r.json: step 2: missing 'kind'",
        ),
        (
            lambda: LRSchedule.from_dict({"kind": "cosine_decay"}, source="spec"),
            "spec: cosine_decay: missing parameter(s) decay_steps",
        ),
        (lambda: LRSchedule.parse(""), "expected 'kind:key=value,...'"),
        (lambda: LRSchedule.parse("exponential_decay:decay_steps"), "expected key=value; got 'decay_steps'"),
        (
            lambda: LRSchedule.parse("exponential_decay:decay_steps=1,decay_steps=2"),
            "decay_steps given twice",
        ),
        (
            lambda: LRSchedule.parse("exponential_decay:decay_steps=ten,decay_rate=0.9"),
            "decay_steps: 'ten' is not a number",
        ),
        (
            lambda: LRSchedule("exponential_decay", {"decay_steps": 10, "decay_rate": 0.9}).values(
                [0, -1], 0.1
            ),
            "steps must be >= 0",
        ),
        (
            lambda: LRSchedule("exponential_decay", {"decay_steps": 10, "decay_rate": 0.9}).values(
                1, float("inf")
            ),
            "initial learning rate must be a finite number",
        ),
    ],
)
def test_lr_bad_inputs_say_what_is_wrong(build, message):
    with pytest.raises(ValueError) as info:
        build()
    assert message in str(info.value)


def test_lr_schedules_listed():
    assert LR_SCHEDULES == (
        "exponential_decay",
        "piecewise_constant_decay",
        "cosine_decay",
        "polynomial_decay",
    )
    assert SPARSITY_SCHEDULES == ("polynomial_decay", "constant_sparsity")


# -- sparsity schedules against TF-MOT -------------------------------------------------------

SPARSITY_CASES = [
    # The issue's schedule.
    dict(kind="polynomial_decay", initial_sparsity=0.3, final_sparsity=0.7, begin_step=0, end_step=1000),
    dict(
        kind="polynomial_decay",
        initial_sparsity=0.0,
        final_sparsity=0.9,
        begin_step=100,
        end_step=300,
        frequency=7,
    ),
    dict(
        kind="polynomial_decay",
        initial_sparsity=0.5,
        final_sparsity=0.8,
        begin_step=3,
        end_step=4,
        frequency=1,
    ),
    dict(
        kind="polynomial_decay",
        initial_sparsity=0.1,
        final_sparsity=0.6,
        begin_step=0,
        end_step=200,
        power=1.0,
    ),
    dict(
        kind="polynomial_decay",
        initial_sparsity=0.2,
        final_sparsity=0.95,
        begin_step=50,
        end_step=1000,
        power=0.5,
    ),
    dict(
        kind="polynomial_decay",
        initial_sparsity=0.8,
        final_sparsity=0.2,
        begin_step=0,
        end_step=100,
        frequency=10,
    ),
    dict(kind="constant_sparsity", final_sparsity=0.5, begin_step=0),
    dict(kind="constant_sparsity", final_sparsity=0.75, begin_step=200, end_step=1000, frequency=25),
    dict(kind="constant_sparsity", final_sparsity=0.0, begin_step=5, end_step=5, frequency=3),
]


def _tfmot(case):
    pytest.importorskip("tensorflow")
    ps = pytest.importorskip("tensorflow_model_optimization.python.core.sparsity.keras.pruning_schedule")
    args = {k: v for k, v in case.items() if k != "kind"}
    if case["kind"] == "constant_sparsity":
        args["target_sparsity"] = args.pop("final_sparsity")
        return ps.ConstantSparsity(**args)
    return ps.PolynomialDecay(**args)


@pytest.mark.parametrize(
    "case", SPARSITY_CASES, ids=[f"{c['kind']}-{i}" for i, c in enumerate(SPARSITY_CASES)]
)
def test_sparsity_equals_tfmot(case):
    import tensorflow as tf

    reference = _tfmot(case)
    ours = SparsitySchedule(**case)
    # TF-MOT's own config names the same arguments with the same values.
    config = reference.get_config()["config"]
    ours_dict = ours.to_dict()
    if case["kind"] == "constant_sparsity":
        ours_dict["target_sparsity"] = ours_dict.pop("final_sparsity")
    assert {k: float(v) for k, v in config.items()} == {
        k: float(v) for k, v in ours_dict.items() if k != "kind"
    }
    assert reference.get_config()["class_name"] == ours.describe().split("(")[0]
    steps = np.unique(np.concatenate([STEPS[STEPS < 1200], np.arange(-3, 3)]))
    prune_all, sparsity_all = ours(steps)
    assert prune_all.dtype == bool and sparsity_all.dtype == np.float64
    for i, step in enumerate(steps):
        # TF-MOT is called with the (int64) pruning step variable's value.
        should, sparsity = reference(tf.constant(int(step), dtype=tf.int64))
        got_should, got_sparsity = ours(int(step))
        assert got_should is bool(should.numpy()), step
        assert got_sparsity == pytest.approx(float(sparsity.numpy()), abs=1e-6), step
        assert (prune_all[i], sparsity_all[i]) == (got_should, got_sparsity)
    assert prune_all.any()  # the comparison covered steps that prune ...
    assert not prune_all.all()  # ... and steps that do not


def test_issue_sparsity_schedule_values():
    s = SparsitySchedule.parse(
        "polynomial_decay:initial_sparsity=0.3,final_sparsity=0.7,begin_step=0,end_step=1000"
    )
    assert (
        s.describe()
        == "PolynomialDecay(initial_sparsity=0.3, final_sparsity=0.7, begin_step=0, end_step=1000)"
    )
    assert s(0) == (True, pytest.approx(0.3))
    assert s(100) == (True, pytest.approx(0.7 + (0.3 - 0.7) * 0.9**3))
    assert s(150)[0] is False
    assert s(1000) == (True, pytest.approx(0.7))
    assert s(1100) == (False, pytest.approx(0.7))  # after end_step: no more pruning, sparsity stays final
    c = SparsitySchedule.parse("constant_sparsity:target_sparsity=0.5,frequency=50")
    assert c.describe() == "ConstantSparsity(target_sparsity=0.5, begin_step=0, frequency=50)"
    assert [c(k)[0] for k in (0, 49, 50, 10**7)] == [True, False, True, True]  # end_step -1: no end


@pytest.mark.parametrize(
    "case", SPARSITY_CASES, ids=[f"{c['kind']}-{i}" for i, c in enumerate(SPARSITY_CASES)]
)
def test_sparsity_round_trips(case):
    s = SparsitySchedule(**case)
    d = s.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert SparsitySchedule.from_dict(d) == s
    text = s.kind + ":" + ",".join(f"{k}={v}" for k, v in d.items() if k != "kind")
    assert SparsitySchedule.parse(text) == s
    assert pickle.loads(pickle.dumps(s)) == s and hash(s) == hash(SparsitySchedule.from_dict(d))
    if s.kind == "constant_sparsity":
        assert "initial_sparsity" not in d and "power" not in d
        alias = {**d, "target_sparsity": d["final_sparsity"]}
        del alias["final_sparsity"]
        assert SparsitySchedule.from_dict(alias) == s


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: SparsitySchedule("linear", 0.5),
            "unknown sparsity schedule 'linear'; known: polynomial_decay",
        ),
        (
            lambda: SparsitySchedule("constant_sparsity", 1.0),
            "constant_sparsity: target_sparsity must be a number in [0, 1); got 1.0",
        ),
        (
            lambda: SparsitySchedule("polynomial_decay", 0.5, initial_sparsity=-0.1, end_step=10),
            "initial_sparsity must be a number in [0, 1); got -0.1",
        ),
        (
            lambda: SparsitySchedule("polynomial_decay", 0.7),
            "polynomial_decay: end_step must be an integer > begin_step (0); got -1",
        ),
        (
            lambda: SparsitySchedule("polynomial_decay", 0.7, begin_step=10, end_step=10),
            "end_step must be an integer > begin_step (10); got 10",
        ),
        (
            lambda: SparsitySchedule("constant_sparsity", 0.5, begin_step=10, end_step=5),
            "end_step must be -1 (no end) or an integer >= begin_step (10); got 5",
        ),
        (
            lambda: SparsitySchedule("constant_sparsity", 0.5, begin_step=-1),
            "begin_step must be an integer >= 0",
        ),
        (
            lambda: SparsitySchedule("constant_sparsity", 0.5, frequency=0),
            "frequency must be an integer >= 1; got 0",
        ),
        (
            lambda: SparsitySchedule("polynomial_decay", 0.5, end_step=10, power=0),
            "power must be a number > 0; got 0",
        ),
        (
            lambda: SparsitySchedule("constant_sparsity", 0.5, initial_sparsity=0.2),
            "initial_sparsity applies to polynomial_decay only",
        ),
        (
            lambda: SparsitySchedule("constant_sparsity", 0.5, power=1.0),
            "power applies to polynomial_decay only",
        ),
        (
            lambda: SparsitySchedule.from_dict({"kind": "constant_sparsity"}),
            "missing final_sparsity (target_sparsity)",
        ),
        (
            lambda: SparsitySchedule.from_dict(
                {"kind": "constant_sparsity", "final_sparsity": 0.5, "step": 1}
            ),
            "unknown parameter(s) step",
        ),
        (
            lambda: SparsitySchedule.from_dict(
                {"kind": "constant_sparsity", "final_sparsity": 0.5, "target_sparsity": 0.5}
            ),
            "give final_sparsity or target_sparsity, not both",
        ),
        (lambda: SparsitySchedule.from_dict("x", source="spec.json"), "spec.json: expected an object"),
        (lambda: SparsitySchedule("constant_sparsity", 0.5)(1.5), "steps must be integers"),
    ],
)
def test_sparsity_bad_inputs_say_what_is_wrong(build, message):
    with pytest.raises(ValueError) as info:
        build()
    assert message in str(info.value)


def test_schedules_module_imports_no_tensorflow():
    """The window imports this module to plot a schedule: it must not pull in TensorFlow."""
    import subprocess
    import sys

    code = (
        "import sys, weightlab.core.schedules as s; "
        "s.LRSchedule('cosine_decay', {'decay_steps': 10}).values(range(20), 0.1); "
        "s.SparsitySchedule('constant_sparsity', 0.5)(3); "
        "bad = [m for m in ('tensorflow', 'keras', 'tensorflow_model_optimization') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
