"""Sweeps in the engine: run a :class:`~weightlab.core.sweeps.SweepSpec` on an opened model.

One implementation serves the engine worker's ``"sweep"`` job
(:mod:`weightlab._tf.worker`) and the headless :func:`weightlab._tf.headless.sweep`
(command line, Python API): :func:`run_sweep` drives a
:class:`~weightlab._tf.points.PointEvaluator` over the sweep's targets and
values and returns a :class:`~weightlab.core.sweeps.SweepResult`.

Order of the points
-------------------
Every value of one target runs in a row, so the activations entering the
target (its frontier, see :mod:`weightlab._tf.points`) are computed once and
reused by all of its points. Targets run from the output backwards: the last
layers first. (Point evaluation never changes the session's cached cuts, so
every target finds the cuts the baseline pass recorded; when a target falls
back to the session's own passes, this order keeps the cut entering each
later target valid.)

Values run weakest first (:meth:`SweepSpec.ordered`); with ``budget_pp`` a
target stops at its first point whose drop in ``spec.metric`` exceeds the
budget (:func:`~weightlab.core.sweeps.past_budget`), and
:attr:`SweepResult.stopped` says where. Adaptive sweeps measure the coarse
grid, then the values :func:`~weightlab.core.sweeps.next_values` asks for,
per target, until the curve is resolved or the point budget is spent.

Partial results and resume
--------------------------
Each measured point is passed to ``on_point`` (the worker streams it as the
job's progress ``partial``, as ``point.to_dict()``) and appended to the
:class:`~weightlab.core.sweeps.SweepLog` when one is given; a sweep started
again on the same log (same spec hash) measures only the points the log
lacks, and its result holds the logged ones as they were.

Baseline and agreement
----------------------
The baseline is the model with the caller's current edits (the *base*; the
unedited file when there are none); drops and agreements are relative to it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import keras
import numpy as np

from ..core.errors import EngineError
from ..core.model import ModelFile
from ..core.plan import Plan
from ..core.sweeps import (
    SweepLog,
    SweepPoint,
    SweepResult,
    SweepSpec,
    SweepTarget,
    past_budget,
    sweep_edit,
    sweep_targets,
)
from ..formats import open_model
from .points import PointEvaluator
from .runtime import EvaluationCancelled

__all__ = [
    "ProgressFn",
    "engine_model_file",
    "evaluate_plan",
    "order_targets",
    "run_sweep",
    "sweep_job",
    "worker_evaluator",
]

#: ``progress(fraction or None, message, point or None)``.
ProgressFn = Callable[[float | None, str, SweepPoint | None], None]


def engine_model_file(session: Any, model_path: str | os.PathLike[str] | None, originals: Mapping[str, np.ndarray]
                      ) -> ModelFile:  # fmt: skip
    """The :class:`~weightlab.core.model.ModelFile` that sweep edits resolve their targets on.

    A Keras ``.keras``/``.h5`` file is opened as the window opens it (its
    stored architecture gives coupled groups and BatchNorm silencing). Other
    formats get an in-memory model of the session's tensors, with the layer
    classes and architecture of the built Keras model when there is one.

    Parameters
    ----------
    session:
        The opened session.
    model_path:
        The model file (None: the in-memory model).
    originals:
        Canonical name -> the file's values (:func:`weightlab._tf.points.original_values`).
    """
    p = None if model_path is None else Path(model_path)
    if p is not None and p.is_file() and p.suffix.lower() in (".keras", ".h5"):
        return open_model(p)
    model = getattr(session, "model", None) or getattr(getattr(session, "exe", None), "model", None)
    classes: dict[str, str] = {}
    config = None
    if isinstance(model, keras.Model):
        classes = {layer.name: type(layer).__name__ for layer in model._flatten_layers(include_self=False)}
        try:
            config = {"class_name": type(model).__name__, "config": model.get_config()}
        except Exception:  # noqa: BLE001 - a model that cannot describe itself: no architecture
            config = None
    return ModelFile.from_arrays(originals, p or "<engine>", format="engine", classes=classes, config=config)


def _changed(spec: SweepSpec, t: SweepTarget, model: ModelFile) -> list[str] | None:
    """The tensors ``t``'s points change (None when the edit cannot say: the point will report it)."""
    try:
        return sweep_edit(spec, t, spec.initial_values()[0], model).targets(model)
    except Exception:  # noqa: BLE001 - ordering and preparation only; the point itself reports the problem
        return None


def order_targets(
    evaluator: PointEvaluator, spec: SweepSpec, targets: list[SweepTarget], model: ModelFile
) -> list[SweepTarget]:
    """``targets`` from the output backwards (the position of the first layer each one changes)."""

    def position(t: SweepTarget) -> int:
        names = _changed(spec, t, model)
        return -1 if names is None else evaluator.position(names)

    keyed = [(position(t), i, t) for i, t in enumerate(targets)]
    return [t for _, _, t in sorted(keyed, key=lambda k: (-k[0], k[1]))]


def run_sweep(
    evaluator: PointEvaluator,
    model: ModelFile,
    spec: SweepSpec,
    *,
    progress: ProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None,
    log: SweepLog | None = None,
    partial_on_cancel: bool = False,
    on_baseline: Callable[[SweepPoint], None] | None = None,
) -> SweepResult:
    """Measure every point of ``spec`` (see the module docstring).

    Parameters
    ----------
    evaluator:
        Holds the opened session and the base edits.
    model:
        What the sweep's edits resolve their targets on
        (:func:`engine_model_file`).
    spec:
        The sweep.
    progress:
        Called after each point as ``progress(fraction, message, point)``
        (``fraction`` None for adaptive sweeps, whose length is not known).
    should_stop:
        Polled between batches; True cancels.
    on_baseline:
        Called once with the baseline (the base model, ``target ""``) as soon
        as it is measured, before any point (the window draws drops against it
        while the sweep runs).
    log:
        The resumable log (:meth:`SweepLog.open` with this spec): points it
        holds are not measured again; new ones are appended.
    partial_on_cancel:
        On cancel, return the points so far (``complete`` False) instead of
        raising.

    Returns
    -------
    SweepResult

    Raises
    ------
    RecipeError
        When a target or value does not fit the model.
    EngineError
        When a point's tensors cannot be assigned (unknown, wrong shape).
    EvaluationCancelled
        When cancelled (unless ``partial_on_cancel``).
    """
    if log is not None and log.spec.spec_hash() != spec.spec_hash():
        raise EngineError(f"the sweep log {log.path} is of another sweep")
    targets = order_targets(evaluator, spec, sweep_targets(spec, model), model)
    measured: dict[tuple[str, float], SweepPoint] = {}
    if log is not None:
        measured = {(p.target, float(p.value)): p for p in log.points if p.value is not None}
    result = SweepResult(spec, SweepPoint("", None, None, None), notes={t.name: t.note for t in targets if t.note})
    initial = spec.initial_values()
    planned = None if spec.adaptive is not None else len(targets) * len(initial)
    done = 0
    try:
        changed = [_changed(spec, t, model) for t in targets]
        if all(names is not None for names in changed):
            base = evaluator.prepare([n for n in changed if n is not None], should_stop=should_stop)
        else:
            base = evaluator.baseline(should_stop=should_stop)
        result.baseline = SweepPoint.from_metrics("", None, base)
        if log is not None:
            log.set_baseline(result.baseline)
        if on_baseline is not None:
            on_baseline(result.baseline)

        def measure(t: SweepTarget, value: float) -> SweepPoint:
            nonlocal done
            key = (t.name, float(value))
            point = measured.get(key)
            if point is None:
                edit = sweep_edit(spec, t, value, model)
                changes = edit.apply(model, evaluator)
                metrics = evaluator.evaluate(changes, should_stop=should_stop)
                point = SweepPoint.from_metrics(t.name, float(value), metrics)
                measured[key] = point
                if log is not None:
                    log.append(point)
            result.points.append(point)
            done += 1
            if progress is not None:
                frac = None if planned is None else min(1.0, done / max(planned, 1))
                progress(frac, f"{t.name} at {spec.param} = {value:g}", point)
            return point

        for t in targets:
            for value in initial:
                point = measure(t, value)
                if past_budget(result.baseline, point, spec.budget_pp, spec.metric):
                    result.stopped[t.name] = float(value)
                    break
            if spec.adaptive is None:
                continue
            # Adaptive: bisect between measured values (below an early stop too: the crossing of the
            # budget is what a plan needs); never past the strongest measured value.
            while True:
                seen = {p.value for p in result.points if p.target == t.name and p.value is not None}
                pairs = [(p.value, p.metric(spec.metric)) for p in result.points if p.target == t.name]
                nxt = [v for v in spec.refine([(v, m) for v, m in pairs if v is not None]) if float(v) not in seen]
                if not nxt:
                    break
                for value in nxt:
                    measure(t, value)
    except EvaluationCancelled:
        if not partial_on_cancel:
            raise
        result.complete = False
    return result


class _Stacked:
    """An array source: the evaluator's base with the changes of earlier edits on top."""

    def __init__(self, evaluator: PointEvaluator) -> None:
        self.evaluator = evaluator
        self.new: dict[str, np.ndarray] = {}

    def array(self, name: str) -> np.ndarray:
        a = self.new.get(name)
        return self.evaluator.array(name) if a is None else a

    def original(self, name: str) -> np.ndarray:
        return self.evaluator.original(name)


def evaluate_plan(
    evaluator: PointEvaluator, model: ModelFile, plan: Plan, *, should_stop: Callable[[], bool] | None = None
) -> Plan:
    """Evaluate a plan's composed recipe once and record it (:meth:`Plan.set_joint`).

    The plan's edits (:meth:`Plan.edits`, every chosen target at its value)
    are applied in turn on the evaluator's base, and the model holding all of
    them is evaluated: the plan's real drop, beside the sum of the
    single-target drops the sweep measured.

    Returns
    -------
    Plan
        ``plan`` itself, with ``joint`` set (target ``"plan"``, value None).

    Raises
    ------
    RecipeError
        When an edit does not fit the model.
    EvaluationCancelled
        When ``should_stop()`` returned True.
    """
    stacked = _Stacked(evaluator)
    for edit in plan.edits(model, evaluator):
        stacked.new.update(edit.apply(model, stacked))
    if evaluator.base_metrics is None:
        evaluator.baseline(should_stop=should_stop)
    metrics = evaluator.evaluate(stacked.new, should_stop=should_stop)
    plan.set_joint(SweepPoint.from_metrics("plan", None, metrics))
    return plan


def worker_evaluator(worker: Any) -> tuple[PointEvaluator, ModelFile]:
    """The evaluator and model of a job in the engine worker: its session and mirrored tensors.

    Raises
    ------
    EngineError
        When evaluation is off (no model or held-out set).
    """
    if worker.session is None:
        raise EngineError(f"evaluation is off: {worker.reason}")
    base = {name: array for name, (_, array) in worker.tensors.items()}
    versions = {name: version for name, (version, _) in worker.tensors.items()}
    evaluator = PointEvaluator(worker.session, base, versions=versions)
    return evaluator, engine_model_file(worker.session, worker.model_path, evaluator.originals)


def sweep_job(worker: Any, spec: Any, ctx: Any) -> SweepResult:
    """The worker's ``sweep`` job handler: the baseline, then each point, streamed as ``ctx.progress(partial=point.to_dict())``.

    The base is the worker's mirror of the edited tensors at the job's turn.
    A cancel ends the job (:class:`EvaluationCancelled`); the points it
    streamed are the partial result.
    """
    assert isinstance(spec, SweepSpec)
    evaluator, model = worker_evaluator(worker)

    def progress(fraction: float | None, message: str, point: SweepPoint | None) -> None:
        ctx.progress(fraction, message, None if point is None else point.to_dict(), final=True)

    def baseline(point: SweepPoint) -> None:  # first: the window's live curves start from it
        ctx.progress(0.0, "baseline measured", point.to_dict(), final=True)

    try:
        return run_sweep(evaluator, model, spec, progress=progress, should_stop=ctx.should_stop, on_baseline=baseline)
    finally:
        model.close()
