"""One-line text reprs of the API's objects (G13 polish): a session, Metrics and the job results.

The data stays in the fields and ``to_json()``; the repr is what a notebook or a REPL prints.
"""

from __future__ import annotations

import dataclasses

import numpy as np

import weightlab
from weightlab.core.plan import Plan, PlanChoice
from weightlab.core.sweeps import RankResult, RankSpec, SweepPoint, SweepResult, SweepSpec, UnitAblation
from weightlab.core.training import EpochRecord, FinetuneResult, PruneRetrainResult, RoundRecord
from weightlab.edits import ZeroNeurons
from weightlab.engine.events import Metrics


def test_session_repr_names_the_model_its_format_tensors_and_edits(demo_paths):
    with weightlab.open(demo_paths["keras"]) as s:
        n = len(s.tensors)
        assert repr(s) == f"Session('digits_cnn.keras', format='keras', tensors={n}, edits=0)"
        s.apply(ZeroNeurons(target="dense", neurons=[0]))
        s.apply(ZeroNeurons(target="dense", neurons=[1]))
        s.undo()
        assert repr(s).endswith(f"tensors={n}, edits=1)")


def test_metrics_repr_is_short_and_keeps_every_field():
    base = Metrics(accuracy=0.99, loss=0.05123456, per_class=[1.0] * 10, num_samples=360)
    edited = dataclasses.replace(base, accuracy=0.9722222, agreement=0.98, baseline=base)
    assert repr(base) == "Metrics(accuracy=0.99, loss=0.0512, samples=360)"
    assert repr(edited) == "Metrics(accuracy=0.9722, loss=0.0512, agreement=0.98, samples=360, baseline_accuracy=0.99)"
    unlabelled = Metrics(accuracy=float("nan"), loss=float("nan"), num_samples=5, labels=False, agreement=0.8)
    assert repr(unlabelled) == "Metrics(agreement=0.8, samples=5)"
    assert dataclasses.asdict(edited)["per_class"] == [1.0] * 10 and edited.baseline is base


def _point(target, value, acc):
    return SweepPoint(target=target, value=value, accuracy=acc, loss=0.1, num_samples=100)


def test_job_results_print_one_line_each():
    spec = SweepSpec(op="clip", param="threshold", targets=("*/kernel",), values=(0.1, 0.05))
    sweep = SweepResult(spec=spec, baseline=_point("", None, 0.99),
                        points=[_point("a/kernel", 0.1, 0.98), _point("b/kernel", 0.1, 0.97)])  # fmt: skip
    assert repr(sweep) == ("SweepResult(op='clip', param='threshold', curves=2, points=2, "
                           "baseline_accuracy=0.99, complete=True)")  # fmt: skip
    rank = RankResult(spec=RankSpec(layer="dense"), baseline=_point("", None, 0.99),
                      units=[UnitAblation(3, _point("dense", 3, 0.9), 0.09, 0.2)])  # fmt: skip
    assert repr(rank) == ("RankResult(layer='dense', ablation='zero', units=1, baseline_accuracy=0.99, "
                          "top_unit=3, top_drop=0.09, complete=True)")  # fmt: skip
    plan = Plan(spec=spec, budget_pp=1.0, metric="accuracy", baseline=0.99,
                choices=[PlanChoice(target="a/kernel", value=0.05, single_drop_pp=0.5, interpolated=False)])  # fmt: skip
    assert repr(plan).startswith("Plan(op='clip', param='threshold', budget_pp=1.0, choices=1, ")
    tuned = FinetuneResult(history=[EpochRecord(epoch=1, loss=0.3, accuracy=0.9)], best_epoch=1,
                           final={"accuracy": 0.95, "loss": 0.2}, arrays={"d/kernel": np.zeros(2)}, label="x")  # fmt: skip
    assert repr(tuned) == "FinetuneResult(epochs=1, best_epoch=1, final_accuracy=0.95, tensors=1, saved=None)"
    rounds = PruneRetrainResult(rounds=[RoundRecord(round=1, sparsity=0.5, accuracy=0.97),
                                        RoundRecord(round=2, sparsity=0.75, accuracy=0.9, kept=False)],
                                baseline=None, arrays={}, label="x")  # fmt: skip
    assert repr(rounds) == "PruneRetrainResult(rounds=2, kept_round=1, sparsity=0.5, accuracy=0.97, stopped=None)"
    for result in (sweep, rank, plan, tuned, rounds):
        assert "\n" not in repr(result) and len(repr(result)) < 200


def test_the_namespace_holds_no_stray_future_import():
    """Public names of ``weightlab`` are ``__all__`` plus its submodules (bound once something imports them)."""
    import types

    assert "annotations" not in dir(weightlab)
    stray = {
        n for n in dir(weightlab)
        if not n.startswith("_") and n not in weightlab.__all__
        and not (isinstance(getattr(weightlab, n), types.ModuleType)
                 and getattr(weightlab, n).__name__ == f"weightlab.{n}")
    }  # fmt: skip
    assert stray == set()
