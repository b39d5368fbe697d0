"""Fine-tune and prune-retrain job specs and results (weightlab.core.training): pure, no TensorFlow."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from weightlab.core.errors import RecipeError
from weightlab.core.jobs import spec_from_dict
from weightlab.core.training import (
    EpochRecord,
    FinetuneResult,
    FinetuneSpec,
    PruneRetrainResult,
    PruneRetrainSpec,
    RoundRecord,
    TrainingSpecError,
)


def test_finetune_spec_round_trips_through_json():
    spec = FinetuneSpec(
        train="t.npz", val_split=0.2, heldout="h.npz", epochs=5, batch_size=16, lr=0.001, optimizer="sgd",
        schedule={"kind": "exponential_decay", "decay_steps": 100, "decay_rate": 0.9}, freeze=["conv*"],
        train_last=2, regularizers=[{"layers": "dense*", "l2": 0.01}],
        constraints=[{"layers": "*", "kind": "max_norm", "max_value": 2}, {"kind": "clip", "value": 0.5}],
        clip_weights=1.0, early_stopping={"monitor": "val_accuracy", "patience": 2},
        pruning={"schedule": {"kind": "polynomial_decay", "initial_sparsity": 0.3, "final_sparsity": 0.7,
                              "begin_step": 0, "end_step": 1000}, "scope": "global"},
        seed=3, on_cancel="last", watch="dense/kernel",
    )  # fmt: skip
    data = json.loads(json.dumps(spec.to_dict()))
    assert spec_from_dict(data) == spec
    assert spec.freeze == ("conv*",) and spec.watch == ("dense/kernel",)
    assert spec.regularizers == ({"layers": ["dense*"], "l1": 0.0, "l2": 0.01},)
    assert spec.early_stopping == {"monitor": "val_accuracy", "patience": 2, "min_delta": 0.0, "start_from_epoch": 0,
                                   "restore_best_weights": True}  # fmt: skip
    assert spec.pruning["layers"] == ["*"] and spec.pruning["schedule"]["final_sparsity"] == 0.7


def test_describe_is_the_history_label():
    assert (
        FinetuneSpec(train="t.npz", epochs=5, lr=0.001).describe()
        == "fine-tune 5 epochs, lr 0.001, masks kept"
    )
    assert FinetuneSpec(train="t.npz").describe() == "fine-tune 1 epoch, lr auto, masks kept"
    text = FinetuneSpec(train="t.npz", epochs=2, lr=0.01, keep_masks=False, regularizers=[{"l1": 0.001}],
                        clip_weights=0.5).describe()  # fmt: skip
    assert text == "fine-tune 2 epochs, lr 0.01, masks free, L1 0.001, clip 0.5/epoch"
    p = PruneRetrainSpec(finetune={"train": "t.npz", "epochs": 2}, rounds=3, threshold=0.05, factor=0.8)
    assert p.describe() == "prune-retrain 3 rounds, threshold 0.05 x0.8, 2 epochs each"
    assert p.label == "Prune-retrain 3 rounds, threshold 0.05 x0.8, 2 epochs each"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"train": ""}, "field 'train'"),
        ({"val": "v.npz", "val_split": 0.1}, "val or val_split, not both"),
        ({"val_split": 1.0}, "field 'val_split': must be < 1"),
        ({"epochs": 0}, "field 'epochs': must be >= 1"),
        ({"epochs": 2.5}, "field 'epochs': expected an integer"),
        ({"batch_size": True}, "field 'batch_size'"),
        ({"lr": 0}, "field 'lr': must be > 0"),
        ({"lr": math.nan}, "finite"),
        ({"optimizer": "adagrad"}, "expected one of auto, adam, sgd, rmsprop"),
        ({"regularizers": [{"l1": 0, "l2": 0}]}, "give l1 and/or l2 > 0"),
        ({"regularizers": [{"l3": 1}]}, "unknown keys 'l3'"),
        ({"constraints": [{"kind": "max_norm", "value": 1}]}, "max_norm takes max_value, axis; got value"),
        ({"constraints": [{"kind": "spectral"}]}, "expected kind one of"),
        ({"early_stopping": {"patience": 2}}, "val_loss needs validation data"),
        ({"early_stopping": {"monitor": "val_auc", "patience": 2}, "val_split": 0.1}, "monitor must be one of"),
        ({"reduce_lr": {"monitor": "loss"}, "schedule": {"kind": "cosine_decay", "decay_steps": 10}},
         "give a schedule or reduce_lr, not both"),
        ({"new_head": 3}, "give the .keras file"),
        ({"new_head": 3, "output": "x.h5"}, "saved as .keras"),
        ({"on_cancel": "first"}, "field 'on_cancel'"),
        ({"schedule": {"kind": "exponential_decay"}}, "field 'schedule'"),
        ({"pruning": {"schedule": {"kind": "constant_sparsity", "final_sparsity": 0.5}, "scope": "tensor"}},
         "scope must be 'layer' or 'global'"),
    ],
)  # fmt: skip
def test_bad_finetune_fields_are_named(fields, message):
    with pytest.raises(TrainingSpecError, match="finetune spec") as e:
        FinetuneSpec(**{"train": "t.npz", **fields})
    assert message in str(e.value)
    assert isinstance(e.value, RecipeError) and isinstance(e.value, ValueError)


def test_prune_retrain_spec():
    p = PruneRetrainSpec(
        finetune={"train": "t.npz", "epochs": 2, "keep_masks": False}, rounds=2, sparsities=[0.5, 0.7]
    )
    assert p.finetune_spec.keep_masks  # forced: rounds keep the pruned weights at zero
    assert (p.round_sparsity(2), p.round_threshold(2)) == (0.7, None)
    q = PruneRetrainSpec(finetune={"train": "t.npz"}, rounds=3, threshold=0.1, factor=0.5)
    assert [q.round_threshold(r) for r in (1, 2, 3)] == [0.1, 0.05, 0.025]
    assert spec_from_dict(json.loads(json.dumps(q.to_dict()))) == q
    for fields, message in (
        ({"rounds": 3}, "exactly one"),
        ({"threshold": 0.1, "sparsities": [0.5]}, "exactly one"),
        ({"sparsities": [0.5, 0.6]}, "2 sparsities for 3 rounds"),
        ({"sparsities": [0.5, 1.0, 0.2]}, "must be < 1"),
        ({"threshold": 0.1, "scope": "layer"}, "field 'scope'"),
        ({"threshold": 0.1, "budget_pp": 1.0}, "needs a held-out set"),
        ({"threshold": 0.1, "finetune": {"train": "t.npz", "new_head": 2, "output": "o.keras"}}, "new head"),
        ({"threshold": 0.1, "finetune": {"train": "t.npz", "epochz": 2}}, "unknown fine-tune fields: epochz"),
        ({"threshold": 0.1, "finetune": {"train": "t.npz", "epochs": 0}}, "field 'epochs'"),
    ):
        with pytest.raises(TrainingSpecError, match="prune_retrain spec") as e:
            PruneRetrainSpec(**{"finetune": {"train": "t.npz"}, **fields})
        assert message in str(e.value)


def test_results_json_shapes():
    hist = [
        EpochRecord(1, 0.9, 0.5, 1.0, 0.4, 0.45, 1.1, 0.001, 2.0),
        EpochRecord(2, 0.5, 0.7, math.nan, None),
    ]
    r = FinetuneResult(hist, best_epoch=1, final={"accuracy": 0.8, "loss": 0.6}, arrays={"d/kernel": np.zeros(2)},
                       label="fine-tune 2 epochs")  # fmt: skip
    out = r.to_json()
    assert out == {
        "history": [
            {"epoch": 1, "loss": 0.9, "accuracy": 0.5, "val_loss": 1.0, "val_accuracy": 0.4},
            {"epoch": 2, "loss": 0.5, "accuracy": 0.7, "val_loss": None, "val_accuracy": None},
        ],
        "best_epoch": 1,
        "final": {"accuracy": 0.8, "loss": 0.6},
    }
    json.dumps(out, allow_nan=False)
    pr = PruneRetrainResult([RoundRecord(1, 0.3, 0.9, 0.2, 0.05)], baseline=None, arrays={}, label="x")
    assert pr.to_json() == {"rounds": [{"round": 1, "sparsity": 0.3, "accuracy": 0.9, "kept": True}]}
