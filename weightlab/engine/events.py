"""Events the engine worker sends to the GUI process, and the metrics they carry.

Plain, picklable dataclasses: no TensorFlow, no Qt. The :class:`EngineClient`
calls its ``on_event`` callback with one of these from its reader thread.

Every event that answers a request carries that request's id (the int returned
by :meth:`EngineClient.open` / :meth:`EngineClient.evaluate`), so a receiver
can drop results of requests it no longer cares about.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = [
    "Metrics",
    "Event",
    "Ready",
    "ModelReady",
    "Progress",
    "Result",
    "Cancelled",
    "Failed",
    "Crashed",
]


@dataclass(frozen=True)
class Metrics:
    """Result of evaluating a model on a held-out set.

    Attributes
    ----------
    accuracy:
        Fraction of samples whose ``argmax`` output equals the label, in [0, 1].
    loss:
        Mean sparse categorical cross-entropy (natural log), as Keras computes
        it: probabilities are clipped to ``[1e-7, 1 - 1e-7]``.
    per_class:
        Accuracy (recall) of each class ``0 .. C-1`` where ``C`` is the number
        of model outputs; ``nan`` for classes absent from the labels.
    num_samples:
        Number of evaluated samples.
    seconds:
        Wall time of the evaluation (forward passes and metrics).
    device:
        ``"CPU"`` or the GPU's name.
    """

    accuracy: float
    loss: float
    per_class: list[float] = field(default_factory=list)
    num_samples: int = 0
    seconds: float = 0.0
    device: str = "CPU"

    def per_class_present(self) -> dict[int, float]:
        """``{class: accuracy}`` for the classes present in the labels."""
        return {i: a for i, a in enumerate(self.per_class) if not math.isnan(a)}


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
    """Answer to ``open``: whether the opened model can be evaluated.

    With ``ok=True`` a :class:`Result` with ``baseline=True`` follows. With
    ``ok=False``, ``reason`` says why evaluation is off (unsafe model, no or
    unfitting held-out set...); inspection and editing still work.

    Attributes
    ----------
    request_id:
        Id of the ``open`` request.
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
    """

    request_id: int
    ok: bool
    reason: str | None = None
    num_samples: int = 0
    num_classes: int = 0
    input_shape: tuple = ()
    mapped: int = 0
    unmapped: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Progress(Event):
    """``done`` of ``total`` batches of request ``request_id`` evaluated."""

    request_id: int
    done: int
    total: int


@dataclass(frozen=True)
class Result(Event):
    """Metrics of a finished evaluation.

    ``baseline`` is True for the evaluation of the unedited model that follows
    a successful ``open``; ``tag`` is the caller's tag given to ``evaluate``.
    """

    request_id: int
    tag: object
    baseline: bool
    metrics: Metrics


@dataclass(frozen=True)
class Cancelled(Event):
    """Request ``request_id`` was dropped (a newer request or ``cancel()``)."""

    request_id: int


@dataclass(frozen=True)
class Failed(Event):
    """Request ``request_id`` failed; ``message`` is user-facing."""

    request_id: int
    message: str


@dataclass(frozen=True)
class Crashed(Event):
    """The worker process died; ``exitcode`` as multiprocessing reports it.

    A negative exit code is the signal that killed it (``-9`` for SIGKILL).
    ``message`` says what happens next (restarting, or why not).
    """

    exitcode: int | None
    message: str
