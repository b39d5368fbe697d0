"""The ``weightlab`` command end to end, run as a real subprocess on the bundled demo."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import weightlab
from weightlab.cli import display_problem

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "QT_QPA_PLATFORM": "offscreen"}


def run_cli(*args: str | Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "weightlab", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=ENV,
    )


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def keras_reference(demo_paths):
    """Weights and held-out metrics of the demo computed by Keras itself."""
    import keras

    model = keras.saving.load_model(demo_paths["keras"], compile=False)
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    data = np.load(demo_paths["data"])
    loss, acc = model.evaluate(data["x"], data["y"], batch_size=256, verbose=0)
    weights = {}
    for layer in model.layers:
        for v in layer.weights:
            weights[f"{layer.name}/{v.name}"] = np.asarray(v.numpy())
    return {"weights": weights, "accuracy": acc, "loss": loss, "model": model, "data": data}


def test_inspect_json_matches_keras(demo_paths, keras_reference):
    res = run_cli("inspect", demo_paths["keras"], "--json")
    assert res.returncode == 0, res.stderr
    rows = json.loads(res.stdout)
    ref = keras_reference["weights"]
    assert [r["name"] for r in rows] == list(ref)
    for r in rows:
        w = ref[r["name"]].astype(np.float64)
        assert tuple(r["shape"]) == w.shape and r["dtype"] == "float32"
        assert r["min"] == w.min() and r["max"] == w.max()
        assert r["mean"] == pytest.approx(w.mean(), rel=1e-9, abs=1e-12)
        assert r["std"] == pytest.approx(w.std(), rel=1e-9, abs=1e-12)
        assert r["zeros"] == np.mean(w == 0)


def test_inspect_table_h5(demo_paths):
    res = run_cli("inspect", demo_paths["h5"])
    assert res.returncode == 0, res.stderr
    assert "conv2d/kernel" in res.stdout and "3x3x1x16" in res.stdout
    assert "batch_normalization/moving_mean" in res.stdout


@pytest.mark.slow
def test_eval_json_equals_model_evaluate(demo_paths, keras_reference):
    res = run_cli("eval", demo_paths["keras"], "--data", demo_paths["data"], "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["accuracy"] == pytest.approx(keras_reference["accuracy"], abs=1e-6)
    assert out["loss"] == pytest.approx(keras_reference["loss"], rel=1e-5)
    assert out["num_samples"] == 360 and len(out["per_class"]) == 10


@pytest.mark.slow
def test_apply_recipe_then_eval_reports_baseline_and_edited(demo_paths, keras_reference, tmp_path):
    recipe = tmp_path / "ablate.json"
    recipe.write_text(
        json.dumps({"version": 1, "edits": [{"op": "zero_neurons", "target": "dense_1", "neurons": [3, 5, 8]}]})
    )
    res = run_cli("eval", demo_paths["keras"], "--data", demo_paths["data"], "--recipe", recipe, "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["baseline"]["accuracy"] == pytest.approx(keras_reference["accuracy"], abs=1e-6)
    # the same ablation done by Keras itself on its own model
    import keras

    model = keras.models.clone_model(keras_reference["model"])
    model.set_weights(keras_reference["model"].get_weights())
    layer = model.get_layer("dense_1")
    kernel, bias = (w.copy() for w in layer.get_weights())
    kernel[:, [3, 5, 8]] = 0
    bias[[3, 5, 8]] = 0
    layer.set_weights([kernel, bias])
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    data = keras_reference["data"]
    loss, acc = model.evaluate(data["x"], data["y"], batch_size=256, verbose=0)
    assert out["edited"]["accuracy"] == pytest.approx(acc, abs=1e-6)
    assert out["edited"]["loss"] == pytest.approx(loss, rel=1e-5)
    assert out["accuracy"] == out["edited"]["accuracy"]
    pred = np.argmax(model.predict(data["x"], verbose=0), axis=1)
    for c in (3, 5, 8):
        assert out["edited"]["per_class"][c] == pytest.approx(np.mean(pred[data["y"] == c] == c))
    assert out["edited"]["accuracy"] < out["baseline"]["accuracy"] - 0.1


def test_apply_writes_edited_copy_and_replays_bit_for_bit(demo_paths, tmp_path):
    recipe = {
        "version": 1,
        "edits": [
            {"op": "clip", "target": "conv2d/kernel", "min": -0.1, "max": 0.1},
            {"op": "zero_neurons", "target": "dense", "neurons": [0, 3]},
            {"op": "scale", "target": "dense_1/kernel", "factor": 0.5},
        ],
    }
    rpath = tmp_path / "r.json"
    rpath.write_text(json.dumps(recipe))
    for kind in ("keras", "h5"):
        src = demo_paths[kind]
        before = sha256(src)
        out = tmp_path / f"out{src.suffix}"
        res = run_cli("apply", src, rpath, "-o", out)
        assert res.returncode == 0, res.stderr
        assert sha256(src) == before
        original, edited = weightlab.open(src), weightlab.open(out)
        replay = weightlab.open(src)
        replay.apply_recipe(recipe)
        changed = {"conv2d/kernel", "dense/kernel", "dense/bias", "dense_1/kernel"}
        for name in original.model.tensors:
            got = edited.array(name)
            assert got.tobytes() == replay.array(name).tobytes(), name
            if name not in changed:
                assert got.tobytes() == original.array(name).tobytes(), name
        assert set(replay.edited_names) == changed
        original.model.close()
        edited.model.close()
        replay.model.close()


def test_apply_refuses_to_overwrite_input_without_flag(demo_paths, tmp_path):
    copy = tmp_path / "m.keras"
    copy.write_bytes(demo_paths["keras"].read_bytes())
    before = sha256(copy)
    rpath = tmp_path / "r.json"
    rpath.write_text(json.dumps({"version": 1, "edits": [{"op": "scale", "target": "dense/kernel", "factor": 2}]}))
    res = run_cli("apply", copy, rpath, "-o", copy)
    assert res.returncode == 2 and "refusing to write over the opened file" in res.stderr
    assert sha256(copy) == before


def _bad_files(tmp: Path, demo: dict[str, Path]) -> dict[str, tuple[Path, str]]:
    """name -> (path, fragment expected in the message)."""
    text = tmp / "notes.h5"
    text.write_text("these are my notes, not a model\n")
    rnd = tmp / "random.keras"
    rnd.write_bytes(np.random.default_rng(0).bytes(4096))
    trunc = tmp / "truncated.h5"
    trunc.write_bytes(demo["h5"].read_bytes()[:3000])
    trunc_k = tmp / "truncated.keras"
    trunc_k.write_bytes(demo["keras"].read_bytes()[:5000])
    empty_h5 = tmp / "nomodel.h5"
    with h5py.File(empty_h5, "w") as f:
        f["just_numbers"] = np.arange(10)
    return {
        "missing": (tmp / "does-not-exist.keras", "does-not-exist.keras"),
        "text": (text, "notes.h5"),
        "random": (rnd, "random.keras"),
        "truncated_h5": (trunc, "truncated.h5"),
        "truncated_keras": (trunc_k, "truncated.keras"),
        "no_model": (empty_h5, "nomodel.h5"),
    }


def test_bad_model_files_exit_2_with_one_clear_line(demo_paths, tmp_path):
    for name, (path, fragment) in _bad_files(tmp_path, demo_paths).items():
        for args in (("inspect", path), ("apply", path, tmp_path / "r.json", "-o", tmp_path / f"o-{name}")):
            res = run_cli(*args)
            assert res.returncode == 2, (name, res.stdout, res.stderr)
            assert "Traceback" not in res.stderr, (name, res.stderr)
            assert fragment in res.stderr, (name, res.stderr)
            assert res.stderr.startswith("weightlab: error: "), (name, res.stderr)
            assert not (tmp_path / f"o-{name}").exists()


def test_recipe_naming_unknown_tensor_writes_nothing(demo_paths, tmp_path):
    rpath = tmp_path / "r.json"
    rpath.write_text(json.dumps({"version": 1, "edits": [{"op": "clip", "target": "dense/kernal", "min": 0, "max": 1}]}))
    out = tmp_path / "o.keras"
    res = run_cli("apply", demo_paths["keras"], rpath, "-o", out)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "dense/kernal" in res.stderr and "step 1" in res.stderr and "r.json" in res.stderr
    assert not out.exists()


@pytest.mark.slow
def test_heldout_set_that_does_not_fit_the_model(demo_paths, tmp_path):
    bad = tmp_path / "wrong_shape.npz"
    np.savez(bad, x=np.zeros((5, 28, 28, 1), np.float32), y=np.zeros(5, np.int64))
    res = run_cli("eval", demo_paths["keras"], "--data", bad)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "wrong_shape.npz" in res.stderr


def test_display_problem_messages():
    assert "DISPLAY is not set" in display_problem({})
    assert display_problem({"QT_QPA_PLATFORM": "offscreen"}) is None
    assert display_problem({"WAYLAND_DISPLAY": "wayland-0"}) is None


def test_version_and_help():
    res = run_cli("--version")
    assert res.returncode == 0 and weightlab.__version__ in res.stdout
    res = run_cli("inspect", "--help")
    assert res.returncode == 0 and "--json" in res.stdout


def test_process_exits_cleanly_with_a_model_left_open(demo_paths):
    """HDF5 must not close a file-object-backed file after the interpreter is gone (was a segfault)."""
    code = (
        "import gc, weightlab\n"
        f"s = weightlab.open({str(demo_paths['keras'])!r})\n"
        "s.array('dense/kernel')\n"  # read through the zip member; never closed
        # keep it alive past interpreter teardown, as a Qt-held reference cycle did
        "s.cycle = s\ngc.freeze()\ndel s\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=ENV)
    assert res.returncode == 0, (res.returncode, res.stderr[-2000:])
