"""The TensorFlow-free side of the process boundary: clients of the TensorFlow processes.

Nothing in this package imports TensorFlow (import-linter checks it): the
engine worker and the TensorFlow reader run the code of :mod:`weightlab._tf`
in child processes that :mod:`weightlab.engine.spawn` starts by name.

Modules
-------
client
    :class:`EngineClient`: starts the engine worker, sends requests, delivers events.
reader
    :class:`~weightlab.engine.reader.TFReaderProcess`: calls the TensorFlow reader process.
spawn
    The child processes' entry points (strings naming :mod:`weightlab._tf` functions).
events
    The events the worker sends (dataclasses), :class:`Metrics`, Wilson intervals.
quiet
    Captured output of the child processes; quiet and verbose modes.
scoring
    Accuracy, loss and agreement from class scores (NumPy), used in the worker.
graph_safety
    The allowlist of graph ops checked before a SavedModel or GraphDef is loaded.

In-process evaluation for headless use lives in :mod:`weightlab._tf.headless`,
which imports TensorFlow.
"""

from .client import EngineClient
from .events import (
    Cancelled,
    Crashed,
    Event,
    Failed,
    Metrics,
    ModelReady,
    Progress,
    Ready,
    Result,
    wilson_interval,
)

__all__ = [
    "EngineClient",
    "Event",
    "Metrics",
    "Ready",
    "ModelReady",
    "Progress",
    "Result",
    "Cancelled",
    "Failed",
    "Crashed",
    "wilson_interval",
]
