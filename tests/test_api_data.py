"""In-memory data for the path-based jobs: ``weightlab.sweep/rank/plan/finetune/prune_retrain`` take
``(x, y)`` arrays, ``x`` alone or a ``tf.data.Dataset`` as :func:`weightlab.evaluate` does (G13 finding 5)."""

from __future__ import annotations

import tempfile

import numpy as np
import pytest

import weightlab
from weightlab.core.errors import DataError

headless = pytest.importorskip("weightlab._tf.headless")

from test_cli_train import FakeEngine  # noqa: E402 - after the skip


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """Temp files of this test land in ``tmp_path/tmp``, so a leftover is seen."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture(scope="module")
def heldout(demo_paths):
    with np.load(demo_paths["data"]) as d:
        return d["x"][:120], d["y"][:120]


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("weightlab-data-"))


def test_rank_and_sweep_of_arrays_equal_the_same_data_from_a_file(demo_paths, heldout, tmp_path, private_tmp):
    x, y = heldout
    npz = tmp_path / "held.npz"
    np.savez(npz, x=x, y=y)
    by_file = weightlab.rank(demo_paths["keras"], npz, layer="dense", cumulative=False)
    by_arrays = weightlab.rank(demo_paths["keras"], (x, y), layer="dense", cumulative=False)
    assert [u.index for u in by_arrays.units] == [u.index for u in by_file.units]
    assert [u.drop for u in by_arrays.units] == [u.drop for u in by_file.units]
    sweep = weightlab.sweep(demo_paths["keras"], [x, y], op="clip", param="threshold", values=[0.05])
    assert sweep.points[0].num_samples == len(x) and sweep.points[0].accuracy is not None
    unlabelled = weightlab.sweep(demo_paths["keras"], x, op="clip", param="threshold", values=[0.05])
    assert unlabelled.points[0].accuracy is None and unlabelled.points[0].agreement is not None
    assert _leftovers(private_tmp) == []


def test_an_error_about_arrays_names_them_not_a_temp_file(demo_paths, heldout, private_tmp):
    x, y = heldout
    with pytest.raises(DataError) as caught:
        weightlab.rank(demo_paths["keras"], (x, y + 20), layer="dense")
    text = str(caught.value)
    assert "the (x, y) arrays" in text and "weightlab-data-" not in text and ".npz" not in text
    assert caught.value.__cause__ is None
    with pytest.raises(DataError, match="the x array") as caught:
        weightlab.sweep(demo_paths["keras"], x.reshape(len(x), -1), op="clip", param="threshold", values=[0.1])
    assert "weightlab-data-" not in str(caught.value)
    assert _leftovers(private_tmp) == []  # removed on error too


def test_finetune_and_prune_retrain_take_train_val_and_data_arrays(demo_paths, heldout, tmp_path,
                                                                    private_tmp, monkeypatch):  # fmt: skip
    fake = FakeEngine()
    seen: list[dict[str, np.ndarray]] = []

    def finetune(model_path, spec, edited=None, **kw):
        seen.append({k: np.load(getattr(spec, k))["x"] for k in ("train", "val", "heldout")})
        return fake.finetune(model_path, spec, edited, **kw)

    monkeypatch.setattr(headless, "finetune", finetune)
    monkeypatch.setattr(headless, "prune_retrain", fake.prune_retrain)
    x, y = heldout
    result = weightlab.finetune(demo_paths["keras"], (x[:80], y[:80]), val=(x[80:100], y[80:100]),
                                data=(x[100:], y[100:]), epochs=1)  # fmt: skip
    assert result.final is not None
    np.testing.assert_array_equal(seen[0]["train"], x[:80])
    np.testing.assert_array_equal(seen[0]["val"], x[80:100])
    np.testing.assert_array_equal(seen[0]["heldout"], x[100:])
    rounds = weightlab.prune_retrain(demo_paths["keras"], (x, y), rounds=1, sparsities=[0.5], data=demo_paths["data"])
    assert rounds.rounds and fake.calls[-1][1].finetune["heldout"] == str(demo_paths["data"])
    assert _leftovers(private_tmp) == []


def test_an_unbatched_dataset_is_refused_with_the_call_that_fixes_it(demo_paths, heldout):
    tf = pytest.importorskip("tensorflow")
    keras = pytest.importorskip("keras")
    x, y = heldout
    live = keras.saving.load_model(demo_paths["keras"])
    cases = [
        (demo_paths["keras"], tf.data.Dataset.from_tensor_slices((x, y))),  # scalar labels: from any model
        (live, tf.data.Dataset.from_tensor_slices((x, y))),
        (live, tf.data.Dataset.from_tensor_slices(x)),  # x alone: the live model's input rank tells
        (demo_paths["keras"], tf.data.Dataset.from_tensor_slices(x)),  # ... and the built file's
    ]
    for model, ds in cases:
        with pytest.raises(DataError, match=r"single samples .*call \.batch\(n\)"):
            weightlab.evaluate(model, ds)
    batched = weightlab.evaluate(live, tf.data.Dataset.from_tensor_slices((x, y)).batch(7))
    assert batched.accuracy == weightlab.evaluate(live, (x, y)).accuracy


def test_a_recipe_written_after_training_on_arrays_names_them_not_a_temp_file(demo_paths, heldout, tmp_path,
                                                                               private_tmp, monkeypatch):  # fmt: skip
    import json

    monkeypatch.setattr(headless, "finetune", FakeEngine().finetune)
    x, y = heldout
    out = tmp_path / "tuned.keras"
    weightlab.finetune(demo_paths["keras"], (x, y), epochs=1, output=out)
    text = (tmp_path / "tuned.recipe.json").read_text(encoding="utf-8")
    assert "weightlab-data-" not in text and "the training (x, y) arrays" in json.dumps(json.loads(text))
    assert _leftovers(private_tmp) == []
