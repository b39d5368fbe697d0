"""What an evaluation reports, and the engine's lifecycle events.

Plain, picklable dataclasses: no TensorFlow, no Qt. :class:`Metrics`, the
running :class:`Progress` and the :class:`Result` of an evaluation are the
payloads of the evaluation job's events
(:class:`~weightlab.engine.protocol.JobProgress` ``.partial`` and
:class:`~weightlab.engine.protocol.JobResult` ``.result``); :class:`Ready`,
:class:`ModelReady` and :class:`Crashed` are events of the worker's life.
:mod:`weightlab.engine.protocol` re-exports them beside the requests and the
job events.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

# The Wilson interval lives in the core (sweeps and rankings use it too); re-exported here.
from weightlab.core.stats import Z95, wilson_interval  # noqa: F401 - re-exported (tests import Z95 from here)

__all__ = ["Crashed", "Event", "Metrics", "ModelReady", "Progress", "Ready", "Result", "wilson_interval"]


def _short(value: float | None, digits: int = 4) -> str:
    """``value`` rounded to ``digits`` decimals for a one-line ``repr`` (None, NaN as themselves)."""
    if value is None:
        return "None"
    v = float(value)
    return repr(v) if v != v or v in (float("inf"), float("-inf")) else repr(round(v, digits))


@dataclass(frozen=True)
class Metrics:
    """Result of evaluating a model on a held-out set.

    Attributes
    ----------
    accuracy:
        Fraction of samples whose ``argmax`` output equals the label, in [0, 1];
        ``nan`` when ``labels`` is False.
    loss:
        Mean sparse categorical cross-entropy (natural log), as Keras computes
        it: probabilities are clipped to ``[1e-7, 1 - 1e-7]``; ``nan`` when
        ``labels`` is False.
    per_class:
        Accuracy (recall) of each class ``0 .. C-1`` where ``C`` is the number
        of model outputs; ``nan`` for classes absent from the labels; empty
        when ``labels`` is False.
    num_samples:
        Number of evaluated samples.
    seconds:
        Wall time of the evaluation (forward passes and metrics).
    device:
        ``"CPU"`` or the GPU's name.
    mode:
        ``"full"`` when every layer ran on the held-out inputs,
        ``"incremental"`` when only the layers downstream of a cached
        activation ran (the incremental engine, see the architecture notes).
    cut:
        For ``"incremental"``: the layer whose cached output fed the
        recomputed layers; None for ``"full"``.
    layers_run, layers_total:
        Layer calls executed by this evaluation and in the whole model
        (input layers not counted); 0 when unknown.
    batch_size:
        Samples per forward pass (0 when unknown).
    labels:
        True when accuracy, loss and per-class accuracy were computed: the
        held-out set has labels and the model has one scored output (one
        output, or the output the user chose). False for an unlabelled set or
        a model with several outputs and none chosen.
    agreement:
        Agreement with the unedited model (the baseline outputs, computed once
        per held-out set): the fraction of samples whose ``argmax`` (last
        axis) is unchanged in every compared output, in [0, 1]; 1.0 for the
        baseline itself. None when no compared output has a class axis of
        size >= 2, or the unedited model has not been evaluated on this
        held-out set yet (the worker and ``weightlab eval`` always evaluate it
        first).
    mean_abs_change:
        For each compared output (see ``outputs``), the mean absolute
        difference from the baseline output over all its elements (of the
        model's actual output: probabilities after a softmax); zeros for the
        baseline. None when not computed.
    outputs:
        Names of the compared outputs, in the order of ``mean_abs_change``.
    baseline:
        The unedited model's Metrics on the same data when these are an
        edited model's (the API's ``evaluate`` of a session with edits), for
        the change from baseline in :meth:`_repr_html_`; None otherwise.
    """

    accuracy: float
    loss: float
    per_class: list[float] = field(default_factory=list)
    num_samples: int = 0
    seconds: float = 0.0
    device: str = "CPU"
    mode: str = "full"
    cut: str | None = None
    layers_run: int = 0
    layers_total: int = 0
    batch_size: int = 0
    labels: bool = True
    agreement: float | None = None
    mean_abs_change: list[float] | None = None
    outputs: list[str] = field(default_factory=list)
    baseline: Metrics | None = None

    def per_class_present(self) -> dict[int, float]:
        """``{class: accuracy}`` for the classes present in the labels."""
        return {i: a for i, a in enumerate(self.per_class) if not math.isnan(a)}

    def __repr__(self) -> str:
        """One line: accuracy (or agreement without labels), loss, samples and the baseline's accuracy.

        The fields all stay (``dataclasses.asdict(metrics)`` has them all).
        """
        parts = [f"accuracy={_short(self.accuracy)}", f"loss={_short(self.loss)}"] if self.labels else []
        if self.agreement is not None and (not self.labels or self.baseline is not None):
            parts.append(f"agreement={_short(self.agreement)}")
        parts.append(f"samples={self.num_samples}")
        if self.baseline is not None and self.labels:
            parts.append(f"baseline_accuracy={_short(self.baseline.accuracy)}")
        return f"Metrics({', '.join(parts)})"

    def _repr_html_(self) -> str:
        """Jupyter's rich display: accuracy and loss, with the change from ``baseline`` when set."""
        from weightlab.core.richdisplay import metrics_html

        return metrics_html(self)


@dataclass(frozen=True)
class Event:
    """Base class of all engine events."""


@dataclass(frozen=True)
class Ready(Event):
    """A worker process started and imported TensorFlow.

    Sent once per worker start (also after a crash restart).
    """

    device: str
    tensorflow_version: str


@dataclass(frozen=True)
class ModelReady(Event):
    """Answer to ``Open``: whether the opened model can be evaluated.

    With ``ok=False``, ``reason`` says why evaluation is off (unsafe model, no
    or unfitting held-out set...); inspection and editing still work.

    Attributes
    ----------
    request_id:
        Id of the ``Open`` request.
    ok:
        True when evaluation is on.
    reason:
        Why evaluation is off (user-facing), None when ``ok``.
    num_samples, num_classes:
        Size of the held-out set and number of model output classes (0 when
        unknown).
    input_shape:
        The model's input shape, ``None`` for free dimensions (``()`` when the
        model could not be built).
    mapped:
        Number of file tensors mapped to model variables.
    unmapped:
        Canonical names of file tensors that could not be mapped (edits to
        them cannot be evaluated).
    labels:
        True when the held-out set has labels and one output is scored
        (accuracy is reported); False: only agreement with the baseline.
    outputs:
        Names of the model's outputs that are evaluated (a SavedModel
        signature's output keys, a graph's output tensors, a Keras model's
        output names); a window offers them as choices.
    signatures:
        A SavedModel's signatures a user may choose from (empty otherwise).
    """

    request_id: int
    ok: bool
    reason: str | None = None
    num_samples: int = 0
    num_classes: int = 0
    input_shape: tuple[int | None, ...] = ()
    mapped: int = 0
    unmapped: list[str] = field(default_factory=list)
    labels: bool = True
    outputs: list[str] = field(default_factory=list)
    signatures: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Crashed(Event):
    """The worker process died; ``exitcode`` as multiprocessing reports it.

    A negative exit code is the signal that killed it (``-9`` for SIGKILL).
    ``message`` says what happens next (restarting, or why not).
    """

    exitcode: int | None
    message: str


@dataclass(frozen=True)
class Progress:
    """``done`` of ``total`` batches of evaluation job ``request_id`` evaluated, with the running accuracy.

    The ``partial`` result of an evaluation job's
    :class:`~weightlab.engine.protocol.JobProgress`.

    Attributes
    ----------
    request_id, done, total:
        The evaluation job's id and its progress in batches.
    samples:
        Held-out samples evaluated so far (0 when not reported).
    accuracy:
        Accuracy over those ``samples`` (``nan`` when ``samples == 0``); on
        the last batch it equals the :class:`Result`'s accuracy.
    ci_low, ci_high:
        95% Wilson score interval of the accuracy over the whole held-out set
        given the samples so far (see :func:`wilson_interval`), treating them
        as a random sample of it; ``nan`` when not reported.
    """

    request_id: int
    done: int
    total: int
    samples: int = 0
    accuracy: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan

    @classmethod
    def running(cls, request_id: int, done: int, total: int, samples: int, correct: int) -> Progress:
        """A Progress whose accuracy is ``correct / samples`` with its Wilson interval."""
        low, high = wilson_interval(correct, samples)
        acc = correct / samples if samples else math.nan
        return cls(request_id, done, total, samples, acc, low, high)


@dataclass(frozen=True)
class Result:
    """Metrics of a finished evaluation: the ``result`` of an evaluation job's :class:`~weightlab.engine.protocol.JobResult`.

    ``request_id`` is the evaluation job's id; ``baseline`` is True for the
    evaluation of the unedited model that follows a successful ``open``;
    ``tag`` is the caller's tag given to ``evaluate``.
    """

    request_id: int
    tag: object
    baseline: bool
    metrics: Metrics
