"""The TensorFlow-free side of the process boundary: clients of the TensorFlow processes.

Nothing in this package imports TensorFlow (import-linter checks it): the
engine worker and the TensorFlow reader run the code of :mod:`weightlab._tf`
in child processes that :mod:`weightlab.engine.spawn` starts by name.

Modules
-------
client
    :class:`EngineClient`: starts the engine worker, sends requests (changed tensors only),
    queues jobs, delivers events.
jobbook
    :class:`~weightlab.engine.jobbook.JobBook`: the client's record of opens and jobs; the rules
    of what is stale (the window's fake engine uses it too).
protocol
    The typed requests and events between the window's process and the worker (dataclasses).
events
    What an evaluation reports: :class:`Metrics`, its :class:`Progress` and :class:`Result`;
    Wilson intervals.
supervisor
    :class:`~weightlab.engine.supervisor.ChildSupervisor`: start, death, restart policy
    and stop of one child process (the worker's and the reader's).
reader
    :class:`~weightlab.engine.reader.TFReaderProcess`: calls the TensorFlow reader process.
spawn
    The child processes' entry points (strings naming :mod:`weightlab._tf` functions).
quiet
    Captured output of the child processes; quiet and verbose modes.
scoring
    Accuracy, loss and agreement from class scores (NumPy), used in the worker.
graph_safety
    The allowlist of graph ops checked before a SavedModel or GraphDef is loaded.

In-process evaluation for headless use lives in :mod:`weightlab._tf.headless`,
which imports TensorFlow. Job specs (what a job is asked to do) live in
:mod:`weightlab.core.jobs`.
"""

from .client import EngineClient
from .events import Metrics, Progress, Result, wilson_interval
from .protocol import (
    Crashed,
    Event,
    JobCancelled,
    JobFailed,
    JobInfo,
    JobProgress,
    JobResult,
    JobStarted,
    ModelReady,
    Ready,
)

__all__ = [
    "EngineClient",
    "Event",
    "Metrics",
    "Ready",
    "ModelReady",
    "Progress",
    "Result",
    "Crashed",
    "JobInfo",
    "JobStarted",
    "JobProgress",
    "JobResult",
    "JobFailed",
    "JobCancelled",
    "wilson_interval",
]
