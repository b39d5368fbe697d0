"""``weightlab finetune`` and ``prune-retrain``: bad inputs exit 2 with one line, before any training, writing nothing."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture
def work(tmp_path, demo_paths) -> dict[str, Path]:
    """A folder with a copy of the demo model, a small training set and the held-out set."""
    folder = tmp_path / "work"
    folder.mkdir()
    model = folder / "m.keras"
    shutil.copyfile(demo_paths["keras"], model)
    rng = np.random.default_rng(0)
    train = folder / "train.npz"
    np.savez(train, x=rng.random((16, 8, 8, 1), dtype=np.float32), y=rng.integers(0, 10, 16))
    data = folder / "heldout.npz"
    shutil.copyfile(demo_paths["data"], data)
    return {"folder": folder, "model": model, "train": train, "data": data}


def _listing(folder: Path) -> dict[str, float]:
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


def _fails(run, work, *args, expect: str) -> str:
    before = _listing(work["folder"])
    code, out, err = run(*args)
    assert code == 2, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("weightlab: error: "), err
    assert expect in lines[0], err
    assert out == ""
    assert _listing(work["folder"]) == before, "a failed command wrote or touched a file"
    return lines[0]


def _finetune(work, *extra) -> list:
    return ["finetune", work["model"], "--train", work["train"], "--val-split", "0.25", "--epochs", "1",
            "-o", work["folder"] / "out.keras", *extra]  # fmt: skip


def _prune(work, *extra) -> list:
    return ["prune-retrain", work["model"], "--train", work["train"], "--val-split", "0.25", "--epochs", "1",
            "--rounds", "2", "-o", work["folder"] / "out.keras", *extra]  # fmt: skip


def test_missing_model_names_it(run, work):
    missing = work["folder"] / "nope.keras"
    args = _finetune(work)
    args[1] = missing
    _fails(run, work, *args, expect=str(missing))


def test_missing_training_data_names_it(run, work):
    args = _finetune(work)
    args[3] = work["folder"] / "gone.npz"
    line = _fails(run, work, *args, expect="gone.npz")
    assert "no such training data" in line


def test_missing_validation_and_heldout_name_them(run, work):
    args = _finetune(work)
    args[4:6] = ["--val", work["folder"] / "val-missing.npz"]
    _fails(run, work, *args, expect="val-missing.npz")
    _fails(run, work, *_finetune(work, "--data", work["folder"] / "h-missing.npz"), expect="h-missing.npz")


def test_bad_schedule_is_named_by_its_flag(run, work):
    line = _fails(run, work, *_finetune(work, "--schedule", "warp_decay:steps=3"), expect="--schedule")
    assert "warp_decay" in line
    _fails(run, work, *_finetune(work, "--schedule", "exponential_decay:decay_steps=x"), expect="--schedule")


def test_bad_pruning_schedule_and_constraint(run, work):
    _fails(run, work, *_finetune(work, "--pruning", "polynomial_decay:final_sparsity=1.5"), expect="--pruning")
    _fails(run, work, *_finetune(work, "--constraint", "max_norm:max_value=big"), expect="--constraint")
    _fails(run, work, *_finetune(work, "--constraint", "spiky"), expect="--constraint")


@pytest.mark.parametrize(
    ("extra", "flag"),
    [
        (("--batch-size", "0"), "--batch-size"),
        (("--lr", "-1"), "--lr"),
        (("--l2", "-0.1"), "--l1/--l2"),
        (("--clip-weights", "0"), "--clip-weights"),
        (("--early-stopping", "-2"), "--early-stopping"),
        (("--new-head", "0"), "--new-head"),
    ],
)
def test_bad_numbers_are_named_by_their_flag(run, work, extra, flag):
    line = _fails(run, work, *_finetune(work, *extra), expect=flag)
    assert line.startswith(f"weightlab: error: {flag}: "), line


def test_val_split_out_of_range(run, work):
    args = _finetune(work)
    args[5] = "1.5"
    _fails(run, work, *args, expect="--val-split")


def test_val_and_val_split_together_and_neither(run, work):
    _fails(run, work, *_finetune(work, "--val", work["data"]), expect="not allowed with argument")
    args = _finetune(work)
    del args[4:6]
    _fails(run, work, *args, expect="--val")


def test_output_never_over_an_input(run, work):
    for target, what in ((work["model"], "model file"), (work["train"], "training data"), (work["data"], "held-out")):
        args = _finetune(work, "--data", work["data"])
        args[-3] = target
        _fails(run, work, *args, expect=f"refusing to write over the {what}")


def test_output_in_the_inputs_format_and_an_existing_folder(run, work):
    args = _finetune(work)
    args[-1] = work["folder"] / "out.h5"
    _fails(run, work, *args, expect="expected a .keras file name")
    args[-1] = work["folder"] / "no-such-folder" / "out.keras"
    _fails(run, work, *args, expect="does not exist")


def test_a_model_keras_cannot_rebuild_is_refused(run, work, tmp_path):
    from modelfactory import save_keras3

    weights_only = save_keras3(tmp_path / "factory", "dense").paths["weights.h5"]
    args = _finetune(work)
    args[1] = weights_only
    args[-1] = work["folder"] / "out.weights.h5"
    line = _fails(run, work, *args, expect="training needs a Keras model (.keras or .h5 with its architecture)")
    assert str(weights_only) in line


def test_prune_retrain_threshold_and_sparsity_exclusive(run, work):
    _fails(run, work, *_prune(work, "--threshold", "0.05", "--sparsity", "0.5,0.7"), expect="not allowed with")
    _fails(run, work, *_prune(work), expect="one of the arguments --threshold --sparsity is required")


def test_prune_retrain_bad_round_arguments(run, work):
    _fails(run, work, *_prune(work, "--sparsity", "0.5,0.7", "--factor", "0.8"), expect="--factor")
    _fails(run, work, *_prune(work, "--sparsity", "0.5,0.7,0.9"), expect="--sparsity")
    _fails(run, work, *_prune(work, "--sparsity", "0.5,lots"), expect="--sparsity")
    _fails(run, work, *_prune(work, "--threshold", "-1"), expect="--threshold")
    _fails(run, work, *_prune(work, "--threshold", "0.05", "--budget", "1"), expect="--budget: needs --data")


def test_usage_errors_are_one_line(run, work):
    _fails(run, work, "finetune", work["model"], "--train", work["train"], "--val-split", "0.1", "-o",
           work["folder"] / "o.keras", expect="--epochs")  # fmt: skip
    _fails(run, work, *_finetune(work, "--optimizer", "lbfgs"), expect="--optimizer")


def test_errors_come_before_tensorflow(tmp_path, demo_paths):
    """A bad schedule is reported by the command without importing TensorFlow (a child process: this one may have)."""
    import subprocess
    import sys

    code = (
        "import sys; from weightlab import cli; "
        f"rc = cli.main(['finetune', {str(demo_paths['keras'])!r}, '--train', {str(demo_paths['data'])!r}, "
        f"'--val-split', '0.1', '--epochs', '1', '--schedule', 'nope', '-o', {str(tmp_path / 'o.keras')!r}]); "
        "print(rc, 'tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.stdout.split() == ["2", "False", "False"], (done.stdout, done.stderr)
    assert not list(tmp_path.iterdir())
