"""``weightlab finetune`` / ``prune-retrain`` and ``weightlab.finetune`` on the real engine, on the bundled demo.

The done-when of issue 12 in miniature (a 256-image slice of the demo's
training split, 1-2 epochs): prune 80 % of the kernels, fine-tune with masks
kept: held-out accuracy comes back, the sparsity is unchanged, the written
model holds exact zeros where the recipe pruned, and the written recipe
replays the training bit for bit in a fresh ``weightlab apply`` process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import weightlab
from weightlab import cli
from weightlab.demo import TRAIN

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def files(tmp_path_factory, demo_paths) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("train")
    with np.load(TRAIN) as npz:
        x, y = npz["x"][:256], npz["y"][:256]
    train = folder / "train.npz"
    np.savez(train, x=x, y=y)
    recipe = folder / "prune80.json"
    recipe.write_text(json.dumps({"version": 1, "edits": [
        {"op": "prune_magnitude", "target": "*/kernel", "sparsity": 0.8}]}))  # fmt: skip
    return {"folder": folder, "model": demo_paths["keras"], "data": demo_paths["data"], "train": train,
            "recipe": recipe}  # fmt: skip


def _main(capsys, *args) -> tuple[int, str]:
    code = cli.main([str(a) for a in args])
    return code, capsys.readouterr().out


def _kernels(path: Path, recipe: Path | None = None) -> dict[str, np.ndarray]:
    s = weightlab.open(path)
    try:
        if recipe is not None:
            s.apply_recipe(recipe)
        return {n: np.array(s.array(n)) for n in s.model.tensors if n.endswith("/kernel")}
    finally:
        s.model.close()


def test_prune_then_finetune_with_masks_kept(files, capsys, tmp_path):
    out = tmp_path / "tuned.keras"
    code, stdout = _main(
        capsys, "finetune", files["model"], "--train", files["train"], "--val-split", "0.25", "--epochs", "2",
        "--recipe", files["recipe"], "--data", files["data"], "--seed", "3", "-o", out, "--json",
    )  # fmt: skip
    assert code == 0
    data = json.loads(stdout)
    assert set(data) == {"history", "best_epoch", "final"}
    assert [h["epoch"] for h in data["history"]] == [1, 2]
    assert all(set(h) == {"epoch", "loss", "accuracy", "val_loss", "val_accuracy"} for h in data["history"])
    assert set(data["final"]) == {"accuracy", "loss"}

    # Accuracy comes back from the pruned model's; the recipe's zeros are still exactly zero.
    s = weightlab.open(files["model"])
    try:
        s.apply_recipe(files["recipe"])
        after_prune = weightlab.evaluate(s, files["data"]).accuracy
    finally:
        s.model.close()
    assert data["final"]["accuracy"] > after_prune + 0.2
    before, trained = _kernels(files["model"], files["recipe"]), _kernels(out)
    for name, mask in before.items():
        zeros = mask == 0
        assert np.all(trained[name][zeros] == 0), name
        assert np.mean(trained[name] == 0) == pytest.approx(np.mean(zeros), abs=1e-9), name  # sparsity unchanged
        assert not np.array_equal(trained[name], mask), f"{name} was not trained"

    # The recipe beside the model replays it exactly in a fresh process.
    replayed = tmp_path / "replayed.keras"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, "-m", "weightlab", "apply", str(files["model"]), str(tmp_path / "tuned.recipe.json"),
         "-o", str(replayed)], capture_output=True, text=True, env=env, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    a, b = weightlab.open(out), weightlab.open(replayed)
    try:
        for name in a.model.tensors:
            np.testing.assert_array_equal(a.array(name), b.array(name), err_msg=name)
    finally:
        a.model.close()
        b.model.close()


def test_prune_retrain_rounds_reach_the_sparsities(files, capsys, tmp_path):
    out = tmp_path / "pr.keras"
    code, stdout = _main(
        capsys, "prune-retrain", files["model"], "--train", files["train"], "--val-split", "0.25",
        "--rounds", "2", "--sparsity", "0.5,0.7", "--epochs", "1", "--data", files["data"], "-o", out, "--json",
    )  # fmt: skip
    assert code == 0
    rounds = json.loads(stdout)["rounds"]
    assert [r["round"] for r in rounds] == [1, 2]
    assert rounds == [{"round": r["round"], "sparsity": r["sparsity"], "accuracy": r["accuracy"], "kept": True}
                      for r in rounds]  # fmt: skip
    assert rounds[0]["sparsity"] == pytest.approx(0.5, abs=1e-3) and rounds[1]["sparsity"] == pytest.approx(0.7, abs=1e-3)
    kernels = _kernels(out)
    total = sum(k.size for k in kernels.values())
    zeros = sum(int(np.sum(k == 0)) for k in kernels.values())
    assert zeros / total == pytest.approx(rounds[-1]["sparsity"], abs=1e-6)


def test_api_finetune_returns_history_frame(files):
    r = weightlab.finetune(files["model"], files["train"], val_split=0.25, epochs=1, keep_masks=False, seed=1)
    frame = r.to_dataframe()
    assert list(frame["epoch"]) == [1] and frame["loss"].iloc[0] == pytest.approx(r.history[0].loss)
    assert r.final is None and r.saved is None
    assert set(r.arrays) >= {"dense/kernel", "dense_1/kernel"}


def test_more_gpus_than_present_is_one_line(files, capfd, tmp_path):
    from weightlab._tf.train import _gpu_devices

    n = len(_gpu_devices()) + 1
    code = cli.main([str(a) for a in ("finetune", files["model"], "--train", files["train"], "--val-split", "0.25",
                                      "--epochs", "1", "--gpus", n, "-o", tmp_path / "g.keras")])  # fmt: skip
    err = capfd.readouterr().err.strip().splitlines()[-1]  # TensorFlow's own start-up lines may come first
    assert code == 2
    assert err == f"weightlab: error: {files['model']}: training on {n} GPU(s) was asked for; TensorFlow sees {n - 1}"
    assert not list(tmp_path.iterdir())


def test_ctrl_c_keeps_the_best_epoch_and_writes_it(files, tmp_path):
    """A real `weightlab finetune` on a terminal: after its first epoch line, Ctrl+C ends it with status 130
    and the kept epoch's weights written (progress read from the pseudo-terminal: no fixed wait)."""
    import pty
    import select
    import signal
    import time

    out = tmp_path / "cancelled.keras"
    leader, follower = pty.openpty()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "WEIGHTLAB_DEBUG": ""}
    proc = subprocess.Popen(
        [sys.executable, "-m", "weightlab", "finetune", str(files["model"]), "--train", str(files["train"]),
         "--val-split", "0.25", "--epochs", "500", "--recipe", str(files["recipe"]), "-o", str(out)],
        stdout=subprocess.PIPE, stderr=follower, env=env, text=True,
    )  # fmt: skip
    os.close(follower)
    seen, deadline = "", time.monotonic() + 240
    try:
        while "epoch 2/500" not in seen and time.monotonic() < deadline and proc.poll() is None:
            ready, _, _ = select.select([leader], [], [], 1.0)
            if ready:
                try:
                    seen += os.read(leader, 4096).decode(errors="replace")
                except OSError:  # the child closed the terminal
                    break
        assert "epoch 1/500" in seen, seen
        proc.send_signal(signal.SIGINT)
        stdout, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        os.close(leader)
    assert proc.returncode == 130, stdout
    assert "kept epoch" in stdout and "(cancelled)" in stdout
    assert out.is_file() and out.with_name("cancelled.recipe.json").is_file()
    before, trained = _kernels(files["model"], files["recipe"]), _kernels(out)
    for name, mask in before.items():
        assert np.all(trained[name][mask == 0] == 0), name
