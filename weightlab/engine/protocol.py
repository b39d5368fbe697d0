"""The engine protocol: typed requests to the engine worker and the events it answers with.

Frozen, picklable dataclasses (no TensorFlow, no Qt) that cross the process
boundary over a :class:`multiprocessing.connection.Connection`:

Parent -> worker (requests)
    :class:`Open` a model and held-out set; :class:`UpdateTensors` (only the
    tensors whose version changed since the last update, each with its
    version); :class:`SubmitJob` (a job id and a JSON-serialisable spec of
    :mod:`weightlab.core.jobs`); :class:`CancelJob`; :class:`Shutdown`.
Worker -> parent (events)
    :class:`Ready`, :class:`ModelReady`, and per job :class:`JobStarted`,
    :class:`JobProgress` (with partial results), then exactly one of
    :class:`JobResult`, :class:`JobFailed` or :class:`JobCancelled`.
Client -> its receiver (events made in the parent)
    :class:`Crashed` when the worker died, and :class:`JobInfo`, a job's
    state for lists of jobs (``queued``, ``running``, then one final state).

The worker handles requests in the order they were sent, one job at a time;
it reads :class:`CancelJob` and :class:`Shutdown` between the batches of a
running job. Which events are stale is decided in one place, the client
(:class:`weightlab.engine.client.EngineClient`); the worker never drops a job
by itself.

The evaluation job's partial result is an
:class:`~weightlab.engine.events.Progress` and its result an
:class:`~weightlab.engine.events.Result` (carrying
:class:`~weightlab.engine.events.Metrics`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from .events import Crashed, Event, Metrics, ModelReady, Progress, Ready, Result, wilson_interval

__all__ = [
    "JOB_STATES",
    "FINAL_STATES",
    "Request",
    "Open",
    "TensorUpdate",
    "UpdateTensors",
    "SubmitJob",
    "CancelJob",
    "Shutdown",
    "Event",
    "Ready",
    "ModelReady",
    "Crashed",
    "JobInfo",
    "JobStarted",
    "JobProgress",
    "JobResult",
    "JobFailed",
    "JobCancelled",
    "Metrics",
    "Progress",
    "Result",
    "wilson_interval",
]

#: The states of a job, in the order a job goes through them.
JOB_STATES = ("queued", "running", "done", "failed", "cancelled")
#: The states a job ends in (exactly one per job).
FINAL_STATES = frozenset({"done", "failed", "cancelled"})


# -- requests --------------------------------------------------------------------------
@dataclass(frozen=True)
class Request:
    """Base class of the requests the parent sends to the engine worker."""


@dataclass(frozen=True)
class Open(Request):
    """Build a model and load a held-out set; answered by :class:`ModelReady`.

    Opening forgets the previous model, its held-out set and the mirrored
    edited tensors (every tensor has its stored values again).

    Attributes
    ----------
    request_id:
        Id of this open (unique per client); :class:`ModelReady` carries it.
    model_path, data_path:
        The model file or folder, and the held-out ``.npz`` (None: evaluation
        is off, :class:`ModelReady` says why).
    trust:
        Allow code inside the file (Lambda layers) to run.
    layout:
        The file's tensor listing ``[(layer, [(canonical name, shape), ...]), ...]``,
        or None to let the worker read it.
    batch_size:
        Samples per forward pass; None lets the engine choose.
    options:
        ``architecture``, ``signature``, ``output``, ``input`` of
        :func:`weightlab._tf.passes.open_session` (only those set).
    """

    request_id: int
    model_path: str
    data_path: str | None = None
    trust: bool = False
    layout: list[tuple[str, list[tuple[str, tuple[int, ...]]]]] | None = None
    batch_size: int | None = None
    options: dict[str, str] = field(default_factory=dict)


class TensorUpdate(NamedTuple):
    """One changed tensor: canonical ``name``, its session-wide ``version``, its values.

    ``array`` None means "back to the stored values" (version 0 by convention).
    """

    name: str
    version: int
    array: np.ndarray | None


@dataclass(frozen=True)
class UpdateTensors(Request):
    """Tensors whose current values changed since the previous update (and only those).

    The worker keeps a mirror ``name -> (version, array)`` of the edited
    tensors; a jobs submitted after this update sees it.
    """

    updates: tuple[TensorUpdate, ...]


@dataclass(frozen=True)
class SubmitJob(Request):
    """Run job ``job_id`` described by ``spec`` (a :mod:`weightlab.core.jobs` spec's ``to_dict()``)."""

    job_id: int
    spec: dict[str, Any]


@dataclass(frozen=True)
class CancelJob(Request):
    """Stop job ``job_id`` (queued: never started; running: at its next batch); answered by :class:`JobCancelled`."""

    job_id: int


@dataclass(frozen=True)
class Shutdown(Request):
    """End the worker process."""


# -- events ------------------------------------------------------------------------------
@dataclass(frozen=True)
class JobInfo(Event):
    """A job's state, for lists of jobs: sent by the client on every change of state.

    Attributes
    ----------
    job_id:
        The job (unique per client).
    kind:
        The spec's kind (``"evaluate"``...).
    label:
        Short user-facing description.
    state:
        One of :data:`JOB_STATES`.
    message:
        Why it failed or was cancelled (user-facing), else ``""``.
    """

    job_id: int
    kind: str
    label: str
    state: str
    message: str = ""

    @property
    def final(self) -> bool:
        """True for ``done``, ``failed`` and ``cancelled``."""
        return self.state in FINAL_STATES


@dataclass(frozen=True)
class JobStarted(Event):
    """The worker began running job ``job_id``."""

    job_id: int


@dataclass(frozen=True)
class JobProgress(Event):
    """Progress of job ``job_id`` (at most about ten per second and job).

    Attributes
    ----------
    job_id:
        The job.
    fraction:
        Done fraction in [0, 1], None when unknown.
    message:
        Short user-facing progress text (``"batch 3 of 10"``).
    partial:
        The job kind's partial result (picklable): an
        :class:`~weightlab.engine.events.Progress` for evaluation.
    """

    job_id: int
    fraction: float | None
    message: str
    partial: object = None


@dataclass(frozen=True)
class JobResult(Event):
    """Job ``job_id`` finished; ``result`` is its kind's result (an :class:`~weightlab.engine.events.Result` for evaluation)."""

    job_id: int
    result: object


@dataclass(frozen=True)
class JobFailed(Event):
    """Job ``job_id`` failed; ``message`` is user-facing."""

    job_id: int
    message: str


@dataclass(frozen=True)
class JobCancelled(Event):
    """Job ``job_id`` was cancelled (by the caller, a newer open, or a newer live evaluation)."""

    job_id: int
