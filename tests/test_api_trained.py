"""``Session.apply_trained``: a fine-tune's result recorded as one undoable, replayable history step."""

from __future__ import annotations

import numpy as np
import pytest

import weightlab
from weightlab.core.training import FinetuneResult, PruneRetrainResult


def _result(arrays: dict[str, np.ndarray], label: str = "fine-tune 1 epoch") -> FinetuneResult:
    return FinetuneResult(history=[], best_epoch=None, final=None, arrays=arrays, label=label)


def test_trained_arrays_become_one_undoable_step(demo_paths):
    with weightlab.open(demo_paths["keras"]) as s:
        name = "dense/kernel"
        before = s.array(name).copy()
        trained = (before * 0.5 + 0.01).astype(before.dtype)
        changed = s.apply_trained(_result({name: trained}))
        assert changed == {name}
        np.testing.assert_array_equal(s.array(name), trained)
        assert [step.edit.describe() for step in s.history][-1].startswith("fine-tune 1 epoch")
        assert s.position == 1
        recipe = s.to_recipe()
        assert recipe["edits"][-1]["op"] == "trained"
        s.undo()
        np.testing.assert_array_equal(s.array(name), before)


def test_nothing_trained_adds_no_step(demo_paths):
    nothing = PruneRetrainResult(rounds=[], baseline=None, arrays={}, label="prune-retrain")
    with weightlab.open(demo_paths["keras"]) as s:
        assert s.apply_trained(nothing) == set()
        assert s.position == 0 and not s.history


@pytest.mark.parametrize(
    ("arrays", "message"),
    [({"no_such/kernel": np.zeros(3, "float32")}, "does not have"), ({"dense/kernel": np.zeros((2, 2), "float32")}, "shape")],
)
def test_trained_arrays_that_do_not_fit_are_refused(demo_paths, arrays, message):
    with weightlab.open(demo_paths["keras"]) as s:
        with pytest.raises(weightlab.WeightLabError, match=message):
            s.apply_trained(_result(arrays))
        assert s.position == 0
