"""Neuron ablation rankings in the engine: run a :class:`~weightlab.core.sweeps.RankSpec`.

One implementation for the engine worker's ``"rank"`` job and the headless
:func:`weightlab._tf.headless.rank`: :func:`run_rank` ablates each output
unit (neuron or filter) of one layer alone, measures the model, and sorts the
units by the accuracy their ablation costs
(:class:`~weightlab.core.sweeps.RankResult`); with ``spec.cumulative`` it then
ablates the ``k`` most and the ``k`` least important units together, ``k = 1
.. n``.

Ablations
---------
``"zero"``
    Through the weights, with the recipe machinery: the unit's kernel slice
    and bias entry zeroed (:class:`~weightlab.core.edits.ZeroNeurons`); when
    a BatchNormalization follows the layer (or ``spec.batchnorm`` says so),
    its ``gamma`` and ``beta`` for the channel too
    (:func:`~weightlab.core.sweeps.rank_edit`), so the channel is exactly
    zero after it (without that, BatchNorm turns a zero channel into
    ``beta - gamma * mean / sqrt(var + eps)``). Every unit's point is the
    same recipe step a user would apply, and runs from the frontier of the
    edited layers (:mod:`weightlab._tf.points`).
``"mean"``
    Through the activations, exactly: the layer's output (after its
    activation function) is computed once on the held-out set; for each
    unit its channel is replaced by the unit's mean over the held-out set
    (over every sample and, for convolutions, every position) and the rest of
    the model runs from there (:meth:`PointEvaluator.evaluate_replaced`). No
    weight edit can do this in general (a bias shift is exact only for a
    linear activation and no BatchNorm in between), so none is pretended.
    Needs a Keras model evaluated incrementally (one input and output).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..core.edits import neuron_count
from ..core.errors import EngineError
from ..core.graph import following_batchnorm
from ..core.model import ModelFile
from ..core.sweeps import RankResult, RankSpec, SweepPoint, rank_edit
from .points import PointEvaluator
from .runtime import EvaluationCancelled

__all__ = ["rank_job", "run_rank"]

#: ``progress(fraction, message, point or None)``.
ProgressFn = Callable[[float | None, str, SweepPoint | None], None]

_ZERO = "weights: each unit's kernel slice and bias zeroed (zero_neurons)"
_ZERO_BN = _ZERO[:-1] + ", and the following BatchNormalization's gamma and beta for its channel)"
_MEAN = (
    "activations: each unit's output replaced by its mean over the held-out set "
    "(all samples and positions); the rest of the model run from the layer's output"
)


def run_rank(
    evaluator: PointEvaluator,
    model: ModelFile,
    spec: RankSpec,
    *,
    progress: ProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None,
    partial_on_cancel: bool = False,
    on_baseline: Callable[[SweepPoint], None] | None = None,
) -> RankResult:
    """Rank the output units of ``spec.layer`` (see the module docstring).

    Parameters
    ----------
    evaluator:
        Holds the opened session and the base edits.
    model:
        What the ablation edits resolve on (:func:`weightlab._tf.sweep.engine_model_file`).
    spec:
        The ranking.
    progress:
        Called after each point as ``progress(fraction, message, point)``;
        ``point.target`` is the layer (cumulative points: ``"top k"`` /
        ``"bottom k"``) and ``point.value`` the unit index (cumulative: ``k``).
    should_stop:
        Polled between batches; True cancels.
    partial_on_cancel:
        On cancel, return the units measured so far (``complete`` False)
        instead of raising.
    on_baseline:
        Called once with the baseline (``target ""``) as soon as it is
        measured, before any unit (the window's live drops are exact then).

    Returns
    -------
    RankResult
        ``method`` says how the ablation was made.

    Raises
    ------
    RecipeError
        When the layer has no kernel, or ``batchnorm`` is asked for and no
        BatchNormalization follows it.
    EngineError
        Mean ablation on a model without an analysable graph, or a layer that
        is not in it (nested, shared).
    EvaluationCancelled
        When cancelled (unless ``partial_on_cancel``).
    """
    layer = spec.layer
    n = neuron_count(layer, model, "out")
    bn = spec.batchnorm
    if spec.ablation == "zero" and bn is None:
        bn = following_batchnorm(model, layer) is not None
    method = _MEAN if spec.ablation == "mean" else (_ZERO_BN if bn else _ZERO)
    total = n * (3 if spec.cumulative else 1)
    done = 0
    points: list[SweepPoint] = []
    baseline = SweepPoint("", None, None, None)
    top: list[SweepPoint] = []
    bottom: list[SweepPoint] = []

    def measure(units: list[int], target: str, value: int) -> SweepPoint:
        nonlocal done
        if spec.ablation == "mean":
            m = evaluator.evaluate_replaced(layer, units, should_stop=should_stop)
        else:
            edit = rank_edit(spec, units, model)
            m = evaluator.evaluate(edit.apply(model, evaluator), should_stop=should_stop)
        point = SweepPoint.from_metrics(target, float(value), m)
        done += 1
        if progress is not None:
            progress(done / total, f"{target}: {'unit' if target == layer else 'k ='} {value}", point)
        return point

    def result(complete: bool) -> RankResult:
        return RankResult.from_points(
            spec, baseline, points, cumulative_top=top, cumulative_bottom=bottom, method=method, complete=complete
        )

    try:
        baseline = SweepPoint.from_metrics("", None, evaluator.baseline(should_stop=should_stop))
        if on_baseline is not None:
            on_baseline(baseline)
        if spec.ablation == "mean":
            units = evaluator.unit_means(layer, should_stop=should_stop).shape[0]
            if units != n:
                raise EngineError(f"layer {layer!r} outputs {units} channels but its kernel has {n} output units")
        for i in range(n):
            points.append(measure([i], layer, i))
        if spec.cumulative:
            ranked = result(True).order(most_important_first=True)
            for k in range(1, len(ranked) + 1):
                top.append(measure(ranked[:k], f"top {k}", k))
            for k in range(1, len(ranked) + 1):
                bottom.append(measure(ranked[::-1][:k], f"bottom {k}", k))
    except EvaluationCancelled:
        if not partial_on_cancel:
            raise
        return result(False)
    return result(True)


def rank_job(worker: Any, spec: Any, ctx: Any) -> RankResult:
    """The worker's ``rank`` job handler: the baseline, then each point, streamed as ``ctx.progress(partial=point.to_dict())``."""
    from .sweep import worker_evaluator

    assert isinstance(spec, RankSpec)
    evaluator, model = worker_evaluator(worker)

    def progress(fraction: float | None, message: str, point: SweepPoint | None) -> None:
        ctx.progress(fraction, message, None if point is None else point.to_dict(), final=True)

    def baseline(point: SweepPoint) -> None:  # first: the window's live drops are exact from the first unit
        ctx.progress(0.0, "baseline measured", point.to_dict(), final=True)

    try:
        return run_rank(evaluator, model, spec, progress=progress, should_stop=ctx.should_stop, on_baseline=baseline)
    finally:
        model.close()
