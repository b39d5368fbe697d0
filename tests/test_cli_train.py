"""``weightlab finetune`` and ``prune-retrain``: what the commands print and write, around the engine.

The engine (``weightlab._tf.headless.finetune`` / ``prune_retrain``) is
replaced here by a stand-in that returns known arrays, so these tests check
the command's own work exactly: the spec it builds from the flags, the
``--json`` shapes of issue 12, the trained model and recipe it writes (the
recipe replays to the same tensors), the "what it bought" table.
tests/test_cli_train_engine.py runs the commands on the real engine.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import weightlab
from weightlab import cli
from weightlab.core.training import EpochRecord, FinetuneResult, FinetuneSpec, PruneRetrainResult, RoundRecord

headless = pytest.importorskip("weightlab._tf.headless")


@pytest.fixture
def work(tmp_path, demo_paths) -> dict[str, Path]:
    folder = tmp_path / "work"
    folder.mkdir()
    model = folder / "m.keras"
    shutil.copyfile(demo_paths["keras"], model)
    rng = np.random.default_rng(0)
    train = folder / "train.npz"
    np.savez(train, x=rng.random((16, 8, 8, 1), dtype=np.float32), y=rng.integers(0, 10, 16))
    return {"folder": folder, "model": model, "train": train, "data": demo_paths["data"]}


class FakeEngine:
    """Stands in for headless.finetune/prune_retrain: halves every kernel of the model it is given (zeros stay 0)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object, dict | None, dict]] = []

    def _trained(self, model_path, edited) -> dict[str, np.ndarray]:
        session = weightlab.open(model_path)
        try:
            out = {}
            for name in session.model.tensors:
                if name.endswith("/kernel"):
                    base = (edited or {}).get(name, session.array(name))
                    out[name] = (np.asarray(base) * 0.5).astype(base.dtype)
            return out
        finally:
            session.model.close()

    def finetune(self, model_path, spec, edited=None, *, trust=False, on_progress=None, should_stop=None, **kw):
        self.calls.append(("finetune", spec, edited, kw))
        history = [
            EpochRecord(epoch=e, loss=1.0 / e, accuracy=0.5 + 0.1 * e, val_loss=1.1 / e, val_accuracy=0.4 + 0.1 * e,
                        heldout_accuracy=0.45 + 0.1 * e if spec.heldout else None, lr=1e-3, seconds=0.1)
            for e in range(1, spec.epochs + 1)
        ]  # fmt: skip
        final = {"accuracy": 0.9, "loss": 0.3} if spec.heldout else None
        if on_progress is not None:
            on_progress(1 / spec.epochs, "epoch 1", {"type": "epoch", **history[0].to_dict(), "tensors": {},
                                                     "eta_s": 1.0, "device": "CPU"})  # fmt: skip
        return FinetuneResult(history=history, best_epoch=spec.epochs, final=final,
                              arrays=self._trained(model_path, edited), label=spec.describe(), device="CPU")  # fmt: skip

    def prune_retrain(self, model_path, spec, edited=None, *, trust=False, on_progress=None, should_stop=None, **kw):
        self.calls.append(("prune_retrain", spec, edited, kw))
        rounds = [RoundRecord(round=r, sparsity=0.2 * r, accuracy=0.9 - 0.01 * r, loss=0.3, threshold=spec.round_threshold(r))
                  for r in range(1, spec.rounds + 1)]  # fmt: skip
        return PruneRetrainResult(rounds=rounds, baseline={"accuracy": 0.95, "loss": 0.2},
                                  arrays=self._trained(model_path, edited), label=spec.describe())  # fmt: skip


@pytest.fixture
def engine(monkeypatch) -> FakeEngine:
    fake = FakeEngine()
    monkeypatch.setattr(headless, "finetune", fake.finetune, raising=False)
    monkeypatch.setattr(headless, "prune_retrain", fake.prune_retrain, raising=False)
    monkeypatch.setattr(headless, "inference_seconds", lambda *a, **k: 0.0125, raising=False)
    return fake


def _prune_recipe(folder: Path) -> Path:
    recipe = folder / "prune.json"
    recipe.write_text(json.dumps({"version": 1, "edits": [
        {"op": "prune_magnitude", "target": "*/kernel", "sparsity": 0.8}]}))  # fmt: skip
    return recipe


def test_finetune_json_shape_and_what_it_writes(run, work, engine):
    out = work["folder"] / "tuned.keras"
    recipe = _prune_recipe(work["folder"])
    code, stdout, err = run(
        "finetune", work["model"], "--train", work["train"], "--val-split", "0.25", "--epochs", "2",
        "--lr", "0.002", "--recipe", recipe, "--data", work["data"], "-o", out, "--json",
    )  # fmt: skip
    assert code == 0, err
    data = json.loads(stdout)
    assert set(data) == {"history", "best_epoch", "final"}
    assert [set(h) for h in data["history"]] == [{"epoch", "loss", "accuracy", "val_loss", "val_accuracy"}] * 2
    assert [h["epoch"] for h in data["history"]] == [1, 2]
    assert data["best_epoch"] == 2 and data["final"] == {"accuracy": 0.9, "loss": 0.3}

    # The spec the flags made, and the recipe's edits handed to the engine as the starting point.
    _, spec, edited, _ = engine.calls[0]
    assert isinstance(spec, FinetuneSpec)
    assert (spec.epochs, spec.lr, spec.val_split, spec.keep_masks) == (2, 0.002, 0.25, True)
    assert spec.heldout == str(work["data"]) and spec.train == str(work["train"])
    kernels = sorted(edited)
    assert kernels and all(k.endswith("/kernel") for k in kernels)

    # The trained model holds the engine's arrays; the masks (the recipe's zeros) are still zero.
    trained = weightlab.open(out)
    try:
        for name in kernels:
            np.testing.assert_array_equal(trained.array(name), edited[name] * np.float32(0.5))
            assert np.mean(trained.array(name) == 0) >= 0.79
    finally:
        trained.model.close()

    # The recipe beside it replays the training exactly on the original model.
    written = out.with_name("tuned.recipe.json")
    steps = json.loads(written.read_text())["edits"]
    assert [s["op"] for s in steps] == ["prune_magnitude", "trained"]
    assert (work["folder"] / steps[1]["arrays"]).is_file()
    code, _, err = run("apply", work["model"], written, "-o", work["folder"] / "replayed.keras")
    assert code == 0, err
    a, b = weightlab.open(out), weightlab.open(work["folder"] / "replayed.keras")
    try:
        for name in a.model.tensors:
            np.testing.assert_array_equal(a.array(name), b.array(name))
    finally:
        a.model.close()
        b.model.close()


def test_finetune_human_output(run, work, engine):
    out = work["folder"] / "tuned.keras"
    code, stdout, err = run(
        "finetune", work["model"], "--train", work["train"], "--val", work["data"], "--epochs", "3",
        "--data", work["data"], "-o", out,
    )  # fmt: skip
    assert code == 0, err
    lines = stdout.splitlines()
    assert lines[0].startswith("fine-tune 3 epochs, lr auto, masks kept: ")
    assert lines[1].split() == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "held-out", "lr", "seconds"]
    assert [ln.split()[0] for ln in lines[2:5]] == ["1", "2", "3"]
    assert "held-out: accuracy 90.00 %  loss 0.3" in stdout
    assert "what it bought (m.keras as stored -> trained):" in stdout
    assert "gzip-compressed file:" in stdout
    assert "inference on digits_heldout.npz: 12.5 ms -> 12.5 ms per pass" in stdout
    assert f"wrote {out}" in stdout and f"wrote {out.with_name('tuned.recipe.json')}" in stdout
    assert err == ""  # progress only on a terminal


def test_finetune_flags_reach_the_spec(run, work, engine):
    out = work["folder"] / "tuned.keras"
    code, _, err = run(
        "finetune", work["model"], "--train", work["train"], "--val-split", "0.2", "--epochs", "1",
        "--optimizer", "sgd", "--momentum", "0.8", "--batch-size", "8", "--seed", "7",
        "--schedule", "exponential_decay:decay_steps=10000,decay_rate=0.9", "--no-keep-masks",
        "--freeze", "conv2d*", "--l1", "0.001", "--l2", "0.01", "--regularize", "dense*",
        "--constraint", "max_norm:max_value=2@dense", "--clip-weights", "0.5",
        "--early-stopping", "3", "--monitor", "val_accuracy", "--no-restore-best",
        "--pruning", "polynomial_decay:initial_sparsity=0.3,final_sparsity=0.7,begin_step=0,end_step=1000",
        "--pruning-scope", "global", "--no-recipe", "-o", out, "--json",
    )  # fmt: skip
    assert code == 0, err
    spec = engine.calls[0][1]
    assert (spec.optimizer, spec.momentum, spec.batch_size, spec.seed, spec.keep_masks) == ("sgd", 0.8, 8, 7, False)
    assert spec.schedule == {"kind": "exponential_decay", "decay_steps": 10000, "decay_rate": 0.9, "staircase": False}
    assert spec.freeze == ("conv2d*",)
    assert spec.regularizers == ({"layers": ["dense*"], "l1": 0.001, "l2": 0.01},)
    assert spec.constraints == ({"layers": ["dense"], "kind": "max_norm", "max_value": 2.0},)
    assert spec.clip_weights == 0.5
    assert spec.early_stopping == {"monitor": "val_accuracy", "patience": 3, "min_delta": 0.0, "start_from_epoch": 0,
                                   "restore_best_weights": False}  # fmt: skip
    assert spec.pruning["scope"] == "global" and spec.pruning["layers"] == ["*"]
    assert spec.pruning["schedule"]["final_sparsity"] == 0.7 and spec.pruning["schedule"]["end_step"] == 1000
    assert out.is_file() and not out.with_name("tuned.recipe.json").exists()


def test_prune_retrain_json_shape(run, work, engine):
    out = work["folder"] / "pruned.keras"
    code, stdout, err = run(
        "prune-retrain", work["model"], "--train", work["train"], "--val-split", "0.25", "--rounds", "3",
        "--threshold", "0.05", "--factor", "0.5", "--epochs", "2", "--data", work["data"], "--budget", "2",
        "-o", out, "--json",
    )  # fmt: skip
    assert code == 0, err
    data = json.loads(stdout)
    assert set(data) == {"rounds"}
    assert [set(r) for r in data["rounds"]] == [{"round", "sparsity", "accuracy", "kept"}] * 3
    assert [r["round"] for r in data["rounds"]] == [1, 2, 3]
    spec = engine.calls[0][1]
    assert (spec.rounds, spec.threshold, spec.factor, spec.budget_pp) == (3, 0.05, 0.5, 2.0)
    assert spec.round_threshold(3) == pytest.approx(0.0125)
    assert spec.finetune["epochs"] == 2 and spec.finetune["heldout"] == str(work["data"])
    assert out.is_file() and out.with_name("pruned.recipe.json").is_file()


def test_prune_retrain_sparsities_human_output(run, work, engine):
    out = work["folder"] / "pruned.keras"
    code, stdout, err = run(
        "prune-retrain", work["model"], "--train", work["train"], "--val-split", "0.25", "--rounds", "2",
        "--sparsity", "0.5,0.7", "--epochs", "1", "-o", out,
    )  # fmt: skip
    assert code == 0, err
    assert engine.calls[0][1].sparsities == (0.5, 0.7)
    assert "baseline (unpruned): accuracy 95.00 %" in stdout
    header = next(ln for ln in stdout.splitlines() if ln.startswith("round"))
    assert header.split() == ["round", "threshold", "sparsity", "held-out", "accuracy", "loss", "kept"]
    assert "inference on" not in stdout  # no --data


def test_output_never_over_the_recipe_beside_it(run, work, engine):
    """-o's recipe would land on the input recipe: refused before training."""
    recipe = work["folder"] / "tuned.recipe.json"
    recipe.write_text(json.dumps({"version": 1, "edits": []}))
    code, _, err = run(
        "finetune", work["model"], "--train", work["train"], "--val-split", "0.25", "--epochs", "1",
        "--recipe", recipe, "-o", work["folder"] / "tuned.keras",
    )  # fmt: skip
    assert code == 2 and "refusing to write over the recipe" in err
    assert engine.calls == []


class _Terminal:
    """A stderr that says it is a terminal and records what is written."""

    def __init__(self, tty: bool) -> None:
        self.tty, self.text = tty, ""

    def isatty(self) -> bool:
        return self.tty

    def write(self, s: str) -> None:
        self.text += s

    def flush(self) -> None:
        pass


def test_progress_only_on_a_terminal():
    term, pipe = _Terminal(True), _Terminal(False)
    partials = [
        {"type": "round", "round": 0, "sparsity": 0.0, "accuracy": 0.97},
        {"type": "batch", "round": 1, "epoch": 1, "batch": 5, "batches": 41, "step": 5, "loss": 0.25, "lr": 1e-3},
        {"type": "sparsity", "step": 100, "sparsity": 0.42},
        {"type": "epoch", "round": 1, "epoch": 1, "loss": 0.2, "val_loss": 0.3, "val_accuracy": 0.9, "eta_s": 4.2},
        {"type": "round", "round": 1, "sparsity": 0.5, "accuracy": 0.95},
    ]
    for out in (term, pipe):
        progress = cli._TrainingProgress(out, epochs=2)
        for p in partials:
            progress(None, "", p)
    assert pipe.text == ""
    lines = [ln.strip() for ln in term.text.replace("\r", "\n").splitlines() if ln.strip()]
    assert lines == [
        "baseline: sparsity 0.00 %  held-out accuracy 97.00 %",
        "round 1, epoch 1/2  batch 5/41  loss 0.2500",
        "step 100: pruned to sparsity 42.00 %",
        "round 1, epoch 1/2  loss 0.2000  val_loss 0.3000  val_accuracy 90.00 %  ETA 4 s",
        "round 1: sparsity 50.00 %  held-out accuracy 95.00 %",
    ]


def test_negative_gpus_refused(run, work, engine):
    code, _, err = run(
        "finetune", work["model"], "--train", work["train"], "--val-split", "0.25", "--epochs", "1",
        "--gpus", "-1", "-o", work["folder"] / "t.keras",
    )  # fmt: skip
    assert code == 2 and err.strip() == "weightlab: error: --gpus: expected a number of GPUs >= 0; got -1"
    assert engine.calls == [] and not (work["folder"] / "t.keras").exists()


def test_reduce_lr_train_last_and_new_head(run, work, engine, monkeypatch):
    out = work["folder"] / "head.keras"
    code, stdout, err = run(
        "finetune", work["model"], "--train", work["train"], "--val-split", "0.25", "--epochs", "1",
        "--reduce-lr", "2", "--monitor", "val_accuracy", "--train-last", "1", "--new-head", "3", "-o", out,
    )  # fmt: skip
    assert code == 0, err
    spec = engine.calls[0][1]
    assert spec.reduce_lr["patience"] == 2 and spec.reduce_lr["monitor"] == "val_accuracy"
    assert spec.reduce_lr["factor"] == 0.5
    assert (spec.train_last, spec.new_head, spec.output) == (1, 3, str(out))
    # The engine saves a new-head model itself; the command writes no recipe and no model of its own.
    assert "what it bought" not in stdout
    assert not out.with_name("head.recipe.json").exists() and not out.exists()


def test_image_folder_without_class_folders_is_refused(run, work, engine):
    images = work["folder"] / "images"
    images.mkdir()
    code, _, err = run(
        "finetune", work["model"], "--train", images, "--val-split", "0.25", "--epochs", "1",
        "-o", work["folder"] / "t.keras",
    )  # fmt: skip
    assert code == 2 and "needs one subfolder per class" in err and str(images) in err
    assert engine.calls == []


def _over_budget(engine, past: int):
    """The fake engine's prune_retrain with round ``past`` past the budget: as the real engine reports it."""
    plain = engine.prune_retrain

    def prune_retrain(model_path, spec, edited=None, **kw):
        r = plain(model_path, spec, edited, **kw)
        r.rounds = r.rounds[:past]
        r.rounds[-1].kept = False
        r.stopped = f"round {past} fell 9.00 pp below the baseline (budget 1 pp); " + (
            f"kept round {past - 1}" if past > 1 else "kept nothing (the model as it was before round 1)")
        if past == 1:
            r.arrays = {}
        return r

    return prune_retrain


def test_prune_retrain_round_1_past_the_budget_writes_nothing(run, work, engine, monkeypatch):
    monkeypatch.setattr(headless, "prune_retrain", _over_budget(engine, 1), raising=False)
    out = work["folder"] / "pruned.keras"
    code, stdout, err = run(
        "prune-retrain", work["model"], "--train", work["train"], "--val-split", "0.25", "--rounds", "3",
        "--sparsity", "0.5,0.7,0.9", "--epochs", "1", "--data", work["data"], "--budget", "1", "-o", out,
    )  # fmt: skip
    assert code == cli.EXIT_NOTHING_KEPT == 3
    assert not out.exists() and not out.with_name("pruned.recipe.json").exists()
    assert f"weightlab: nothing written to {out}: round 1 fell 9.00 pp below the baseline" in err
    row = next(ln for ln in stdout.splitlines() if ln.startswith("1 "))
    assert row.split()[-1] == "no"
    code, stdout, err = run(
        "prune-retrain", work["model"], "--train", work["train"], "--val-split", "0.25", "--rounds", "3",
        "--sparsity", "0.5,0.7,0.9", "--epochs", "1", "--data", work["data"], "--budget", "1", "-o", out, "--json",
    )  # fmt: skip
    assert code == 3 and json.loads(stdout)["rounds"][0]["kept"] is False and not out.exists()


def test_prune_retrain_past_the_budget_writes_the_round_kept(run, work, engine, monkeypatch):
    monkeypatch.setattr(headless, "prune_retrain", _over_budget(engine, 3), raising=False)
    out = work["folder"] / "pruned.keras"
    code, stdout, err = run(
        "prune-retrain", work["model"], "--train", work["train"], "--val-split", "0.25", "--rounds", "3",
        "--sparsity", "0.5,0.7,0.9", "--epochs", "1", "--data", work["data"], "--budget", "1", "-o", out,
    )  # fmt: skip
    assert code == 0, err
    assert out.is_file() and "stopped: round 3 fell 9.00 pp below the baseline (budget 1 pp); kept round 2" in stdout
    kept = [ln.split()[-1] for ln in stdout.splitlines() if ln[:2] in ("1 ", "2 ", "3 ")]
    assert kept[:3] == ["yes", "yes", "no"]


def test_tables_line_up_with_one_number_format_per_column(run, work, engine, monkeypatch):
    """Losses with 4 decimals (0.1120, not 0.112), the rates with one number of decimals down the column."""
    plain = engine.finetune

    def finetune(model_path, spec, edited=None, **kw):
        r = plain(model_path, spec, edited, **kw)
        for rec, loss, val_loss, lr in zip(r.history, (0.112, 1.5, 0.0001925), (2.25, 0.1, 0.03), (1e-3, 9e-4, 8.1e-4)):
            rec.loss, rec.val_loss, rec.lr = loss, val_loss, lr
        return r

    monkeypatch.setattr(headless, "finetune", finetune, raising=False)
    code, stdout, err = run("finetune", work["model"], "--train", work["train"], "--val-split", "0.25", "--epochs",
                            "3", "-o", work["folder"] / "t.keras")  # fmt: skip
    assert code == 0, err
    lines = stdout.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("epoch"))
    table = lines[start : start + 4]
    header = table[0].split()
    ends = [table[0].index(name) + len(name) for name in header]  # cells are right-aligned to their header's end
    rows = [{h: ln[a:b].strip() for h, a, b in zip(header[1:], ends, ends[1:])} for ln in table[1:]]
    assert [r["loss"] for r in rows] == ["0.1120", "1.5000", "0.0002"]
    assert [r["val_loss"] for r in rows] == ["2.2500", "0.1000", "0.0300"]
    assert [r["lr"] for r in rows] == ["0.00100", "0.00090", "0.00081"]
    assert cli._column([float(np.float32(1e-3))] * 2) == ["0.001", "0.001"]  # a float32 rate reads as set
    for name in ("loss", "val_loss", "lr", "seconds"):  # right-aligned: each column ends at the header's end
        end = table[0].index(name) + len(name)
        assert all(ln[end - 1] != " " and (len(ln) == end or ln[end] == " ") for ln in table), name


def test_rounds_table_thresholds_line_up(run, work, engine):
    code, stdout, err = run(
        "prune-retrain", work["model"], "--train", work["train"], "--val-split", "0.25", "--rounds", "3",
        "--threshold", "0.05", "--factor", "0.8", "--epochs", "1", "-o", work["folder"] / "p.keras",
    )  # fmt: skip
    assert code == 0, err
    rows = [ln.split() for ln in stdout.splitlines() if ln[:2] in ("1 ", "2 ", "3 ")][:3]
    assert [r[1] for r in rows] == ["0.050", "0.040", "0.032"] and [r[-2] for r in rows] == ["0.3000"] * 3
