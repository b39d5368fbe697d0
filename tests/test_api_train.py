"""``weightlab.finetune`` / ``weightlab.prune_retrain`` and :mod:`weightlab.training` (issue 12, item 12: the Python API).

The engine is the stand-in of tests/test_cli_train.py (known arrays), so these
check the API's own work: arguments -> spec, the session or recipe the
training starts from, what ``output`` writes, the DataFrames.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import weightlab
from weightlab import training
from weightlab.core.errors import DataError, EngineError, RecipeError
from weightlab.core.training import FinetuneResult, PruneRetrainResult

headless = pytest.importorskip("weightlab._tf.headless")

from test_cli_train import FakeEngine  # noqa: E402 - after the skip


@pytest.fixture
def engine(monkeypatch) -> FakeEngine:
    fake = FakeEngine()
    monkeypatch.setattr(headless, "finetune", fake.finetune, raising=False)
    monkeypatch.setattr(headless, "prune_retrain", fake.prune_retrain, raising=False)
    return fake


@pytest.fixture
def work(tmp_path, demo_paths) -> dict[str, Path]:
    model = tmp_path / "m.keras"
    shutil.copyfile(demo_paths["keras"], model)
    train = tmp_path / "train.npz"
    rng = np.random.default_rng(1)
    np.savez(train, x=rng.random((8, 8, 8, 1), dtype=np.float32), y=rng.integers(0, 10, 8))
    return {"folder": tmp_path, "model": model, "train": train, "data": demo_paths["data"]}


def test_finetune_returns_the_result_and_writes_output(work, engine):
    out = work["folder"] / "tuned.keras"
    result = weightlab.finetune(work["model"], work["train"], val_split=0.25, epochs=2, lr=1e-3,
                                data=work["data"], output=out, early_stopping=2)  # fmt: skip
    assert isinstance(result, FinetuneResult)
    assert result.saved == str(out) and out.is_file()
    spec = engine.calls[0][1]
    assert spec.early_stopping["patience"] == 2 and spec.early_stopping["restore_best_weights"] is True
    assert engine.calls[0][2] is None  # the stored file, no edits
    frame = training.history_frame(result)
    assert list(frame["epoch"]) == [1, 2]
    assert list(frame.columns[:5]) == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy"]
    np.testing.assert_allclose(frame["loss"], [r.loss for r in result.history])
    assert json.loads(json.dumps(result.to_json()))["best_epoch"] == 2


def test_finetune_starts_from_a_session_and_adds_its_step(work, engine):
    from weightlab.edits import PruneMagnitude

    s = weightlab.open(work["model"])
    try:
        s.apply(PruneMagnitude(target="dense/kernel", sparsity=0.5))
        pruned = s.array("dense/kernel").copy()
        result = weightlab.finetune(s, work["train"], val_split=0.25, epochs=1, output=work["folder"] / "t.keras")
        np.testing.assert_array_equal(engine.calls[0][2]["dense/kernel"], pruned)
        # With output, the training is the session's newest step (undoable).
        assert s.position == 2
        np.testing.assert_array_equal(s.array("dense/kernel"), result.arrays["dense/kernel"])
        s.undo()
        np.testing.assert_array_equal(s.array("dense/kernel"), pruned)
    finally:
        s.model.close()


def test_prune_retrain_returns_rounds(work, engine):
    result = weightlab.prune_retrain(work["model"], work["train"], val_split=0.25, rounds=2,
                                     sparsities="0.5,0.7", epochs=1, data=work["data"])  # fmt: skip
    assert isinstance(result, PruneRetrainResult)
    assert result.to_json() == {"rounds": [{"round": 1, "sparsity": 0.2, "accuracy": 0.89, "kept": True},
                                           {"round": 2, "sparsity": 0.4, "accuracy": 0.88, "kept": True}]}  # fmt: skip
    frame = training.rounds_frame(result)
    assert list(frame["round"]) == [1, 2] and list(frame.columns) == ["round", "sparsity", "accuracy", "loss",
                                                                      "threshold", "kept"]  # fmt: skip
    assert frame["kept"].dtype == bool and frame["sparsity"].dtype == float
    assert engine.calls[0][1].sparsities == (0.5, 0.7)


def test_prune_retrain_round_1_past_the_budget_writes_nothing(work, engine, monkeypatch):
    from test_cli_train import _over_budget

    monkeypatch.setattr(headless, "prune_retrain", _over_budget(engine, 1), raising=False)
    out = work["folder"] / "p.keras"
    result = weightlab.prune_retrain(work["model"], work["train"], val_split=0.25, rounds=2, sparsities="0.5,0.7",
                                     epochs=1, data=work["data"], budget_pp=1, output=out)  # fmt: skip
    assert result.kept_round == 0 and result.arrays == {} and not out.exists()
    monkeypatch.setattr(headless, "prune_retrain", _over_budget(engine, 2), raising=False)
    result = weightlab.prune_retrain(work["model"], work["train"], val_split=0.25, rounds=2, sparsities="0.5,0.7",
                                     epochs=1, data=work["data"], budget_pp=1, output=out)  # fmt: skip
    assert result.kept_round == 1 and out.is_file()


def test_errors_before_the_engine(work, engine, tmp_path):
    with pytest.raises(RecipeError, match="schedule"):
        weightlab.finetune(work["model"], work["train"], schedule="nope:x=1")
    with pytest.raises(RecipeError, match="threshold"):
        weightlab.prune_retrain(work["model"], work["train"], threshold=0.1, sparsities=[0.5, 0.6, 0.7])
    with pytest.raises(DataError, match="no such training data"):
        weightlab.finetune(work["model"], tmp_path / "none.npz")
    from modelfactory import save_keras3

    weights = save_keras3(tmp_path / "f", "dense").paths["weights.h5"]
    with pytest.raises(EngineError, match=r"training needs a Keras model") as info:
        weightlab.finetune(weights, work["train"])
    assert str(weights) in str(info.value)
    assert engine.calls == []


def test_spec_builders_from_text_and_objects():
    from weightlab.core.schedules import LRSchedule, SparsitySchedule

    text = training.finetune_spec("t.npz", schedule="cosine_decay:decay_steps=100", pruning="constant_sparsity:target_sparsity=0.5")
    obj = training.finetune_spec(
        "t.npz", schedule=LRSchedule.parse("cosine_decay:decay_steps=100"),
        pruning=SparsitySchedule.parse("constant_sparsity:target_sparsity=0.5"),
    )  # fmt: skip
    assert text == obj
    assert text.schedule["kind"] == "cosine_decay" and text.pruning["schedule"]["final_sparsity"] == 0.5
    assert training.parse_constraint("min_max_norm:min_value=0.5,max_value=1,axis=0@dense*") == {
        "kind": "min_max_norm", "layers": "dense*", "min_value": 0.5, "max_value": 1.0, "axis": 0}  # fmt: skip
    with pytest.raises(RecipeError, match="constraint"):
        training.parse_constraint("max_norm:max_value")
    assert training.recipe_path("out/model.v2.keras") == Path("out/model.v2.recipe.json")
