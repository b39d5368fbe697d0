"""The TensorFlow side of WeightLab: the engine worker process and its client.

Importing this package does not import TensorFlow: it exports the
:class:`EngineClient` (which runs TensorFlow in a child process) and the event
dataclasses it delivers. In-process evaluation for headless use lives in
:mod:`weightlab.engine.evaluate`, which does import TensorFlow.
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
