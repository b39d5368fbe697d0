"""The engine protocol's messages and the job specs: every one crosses a pipe intact.

Requests and events are pickled over a :func:`multiprocessing.Pipe` (as
between the window's process and the worker) and must come back equal; job
specs must survive JSON (they are made in one process and rebuilt in another).
"""

from __future__ import annotations

import json
import math
import multiprocessing
import pickle
from dataclasses import FrozenInstanceError, fields

import numpy as np
import pytest

from weightlab.core.jobs import SPEC_KINDS, EvaluateSpec, spec_from_dict
from weightlab.engine import events, protocol
from weightlab.engine.protocol import (
    FINAL_STATES,
    JOB_STATES,
    CancelJob,
    Crashed,
    JobCancelled,
    JobFailed,
    JobInfo,
    JobProgress,
    JobResult,
    JobStarted,
    Metrics,
    ModelReady,
    Open,
    Progress,
    Ready,
    Request,
    Result,
    Shutdown,
    SubmitJob,
    TensorUpdate,
    UpdateTensors,
)

METRICS = Metrics(0.75, 0.5, per_class=[1.0, math.nan], num_samples=4, seconds=0.1, mode="incremental",
                  cut="dense", layers_run=1, layers_total=3, batch_size=4, agreement=0.5,
                  mean_abs_change=[0.25], outputs=["out"])

REQUESTS = [
    Open(1, "m.keras", "d.npz", True, [("dense", [("dense/kernel", (3, 2))])], 32, {"output": "probs"}),
    Open(2, "m.keras"),
    UpdateTensors((TensorUpdate("dense/kernel", 7, np.arange(6, dtype=np.float32).reshape(3, 2)),
                   TensorUpdate("dense/bias", 0, None))),
    SubmitJob(3, EvaluateSpec(versions={"dense/kernel": 7}, tag=2).to_dict()),
    CancelJob(3),
    Shutdown(),
]

EVENTS = [
    Ready("CPU", "2.x"),
    ModelReady(1, True, None, 4, 2, (None, 3), 2, ["x/y"], True, ["out"], ["serving_default"]),
    ModelReady(2, False, "no held-out set"),
    Crashed(-9, "the evaluation engine stopped unexpectedly"),
    JobInfo(3, "evaluate", "Evaluation", "running"),
    JobStarted(3),
    JobProgress(3, 0.5, "batch 1 of 2", Progress.running(3, 1, 2, 4, 3)),
    JobProgress(4, None, "", None),
    JobResult(3, Result(3, 2, False, METRICS)),
    JobFailed(3, "evaluation failed: boom"),
    JobCancelled(3),
]


def _same(a, b) -> bool:
    """Equality of messages, with arrays compared by value and nan equal to nan."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if hasattr(a, "__dataclass_fields__"):
        return type(a) is type(b) and all(_same(getattr(a, f.name), getattr(b, f.name)) for f in fields(a))
    return a == b


@pytest.mark.parametrize("message", REQUESTS + EVENTS, ids=lambda m: type(m).__name__)
def test_every_message_crosses_a_pipe_intact(message):
    parent, child = multiprocessing.Pipe()
    try:
        parent.send(message)
        back = child.recv()
    finally:
        parent.close()
        child.close()
    assert back is not message and _same(back, message)
    assert _same(pickle.loads(pickle.dumps(message)), message)


def test_every_protocol_class_is_exercised_and_frozen():
    classes = {cls for cls in vars(protocol).values() if isinstance(cls, type) and hasattr(cls, "__dataclass_fields__")
               and cls.__module__ in (protocol.__name__, events.__name__)}
    used = {type(m) for m in REQUESTS + EVENTS}
    assert classes - used == {protocol.Request, protocol.Event, Metrics, Progress, Result}
    for message in REQUESTS + EVENTS:
        name = next((f.name for f in fields(message)), None)
        if name is not None:
            with pytest.raises(FrozenInstanceError):
                setattr(message, name, None)
    assert all(isinstance(m, Request) for m in REQUESTS) and not any(isinstance(m, Request) for m in EVENTS)


def test_job_states():
    assert JOB_STATES == ("queued", "running", "done", "failed", "cancelled")
    assert FINAL_STATES == {"done", "failed", "cancelled"}
    assert [JobInfo(1, "evaluate", "E", s).final for s in JOB_STATES] == [False, False, True, True, True]


@pytest.mark.parametrize(
    "spec",
    [EvaluateSpec(), EvaluateSpec(versions={"a/kernel": 3, "b/bias": 9}, tag=4),
     EvaluateSpec(tag={"step": [1, "x"]}, baseline=True, live=False)],
)
def test_specs_round_trip_through_json(spec):
    text = json.dumps(spec.to_dict())
    back = spec_from_dict(json.loads(text))
    assert back == spec and type(back) is type(spec)
    assert json.loads(text)["kind"] == "evaluate" and SPEC_KINDS["evaluate"] is EvaluateSpec


def test_spec_errors_name_what_is_wrong():
    with pytest.raises(ValueError, match="unknown job kind .no_such_kind..*evaluate"):
        spec_from_dict({"kind": "no_such_kind"})
    with pytest.raises(ValueError, match="unknown fields: colour"):
        spec_from_dict({"kind": "evaluate", "colour": "red"})
    with pytest.raises(TypeError):
        EvaluateSpec(tag=object()).to_dict()  # not a JSON value: refused where it is made
    with pytest.raises(ValueError):
        EvaluateSpec(tag=math.nan).to_dict()
    assert EvaluateSpec(versions={"a": np.int64(3)}).versions == {"a": 3}  # NumPy ints become ints
    assert type(EvaluateSpec(versions={"a": np.int64(3)}).versions["a"]) is int


def test_labels():
    assert EvaluateSpec().label == "Evaluation" and EvaluateSpec(baseline=True).label == "Baseline evaluation"
