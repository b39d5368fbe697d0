"""What every evaluation in the wall shares: the device, cancellation, TensorFlow's run-time errors.

Imports TensorFlow; a leaf of :mod:`weightlab._tf` (imports nothing of it).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re

import tensorflow as tf

from ..core.errors import EngineError
from ..engine.quiet import is_verbose

__all__ = [
    "EvaluationCancelled",
    "device_name",
    "run_error_message",
    "run_errors",
    "run_reason",
]


class _NoRetracingNotice(logging.Filter):
    """Drops TensorFlow's "N out of the last M calls to <function> triggered tf.function retracing" warning.

    Sweeps and rankings build one suffix model (and function) per target on
    purpose (:mod:`weightlab._tf.points`); the notice says nothing to a user.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


if not is_verbose():
    logging.getLogger("tensorflow").addFilter(_NoRetracingNotice())


class EvaluationCancelled(Exception):
    """Raised by :func:`evaluate` when ``should_stop()`` returned True between batches."""


#: Where TensorFlow's messages name the failing node: ``[[{{node Reshape}}]]``, ``Detected at node 'x'``.
_NODE_MARK = re.compile(r"\[\[\{\{node ([^}]+)\}\}")
_DETECTED = re.compile(r"^Detected at node '?([^' ]+)'?")
#: Context lines around the reason in TensorFlow's run-time messages.
_CONTEXT = ("Graph execution error", "Detected at node", "Node:", "<stack traces", "Original stack trace")


def run_reason(exc: BaseException) -> tuple[str, str | None]:
    """``(reason, node)`` of a TensorFlow run-time error: its message's line that says why, and the node.

    TensorFlow wraps the reason: ``Graph execution error:``, ``Detected at
    node X defined at ...`` with a Python stack, then the reason, then
    ``[[{{node X}}]]`` and ``[Op:...]``. The reason is the line before the
    first ``[[{{node`` marker (or the text before the marker on its line);
    without a marker, the first line that is no context.
    """
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    lines = [line.rstrip() for line in text.splitlines()]
    node_def = getattr(exc, "node_def", None)
    node = getattr(node_def, "name", None) or None
    reason = ""
    for i, line in enumerate(lines):
        mark = _NODE_MARK.search(line)
        if mark is None:
            continue
        node = node or mark.group(1)
        reason = line[: mark.start()].strip() or next(
            (prev.strip() for prev in reversed(lines[:i]) if prev.strip()), ""
        )
        break
    if not reason or reason.startswith(_CONTEXT):
        reason = next(
            (
                line.strip()
                for line in lines
                if line.strip() and not line[:1].isspace() and not line.strip().startswith(_CONTEXT)
            ),
            type(exc).__name__,
        )
    if node is None:
        detected = next((m for m in map(_DETECTED.match, lines) if m), None)
        node = detected.group(1) if detected else None
    reason = re.sub(r"\s*\[Op:[^\]]*\]\s*$", "", reason)
    return reason, node


def run_error_message(exc: BaseException) -> str:
    """One line saying why TensorFlow failed while running a model.

    Parameters
    ----------
    exc:
        Usually a ``tf.errors.OpError`` (``InvalidArgumentError``: a reshape
        that does not fit, ...); any exception is accepted.

    Returns
    -------
    str
        ``"the model failed at node 'Reshape' while running: Input to reshape
        is a tensor with 96 values, ..."``: the node (when known) and the first
        line of the message that is not TensorFlow's context (stack traces,
        ``Detected at node``).
    """
    reason, node = run_reason(exc)
    where = f" at node {node!r}" if node else ""
    return f"the model failed{where} while running: {reason}"


@contextlib.contextmanager
def run_errors(model_path: str | os.PathLike[str]):
    """Turn TensorFlow's run-time errors (``tf.errors.OpError``) into :class:`EngineError` naming the model.

    Raises
    ------
    EngineError
        With :func:`run_error_message`'s line, for ``model_path``.
    """
    try:
        yield
    except tf.errors.OpError as exc:
        raise EngineError(run_error_message(exc), model_path) from exc


# -- the device ------------------------------------------------------------------------
@functools.cache
def device_name() -> str:
    """``"CPU"`` or the name of the first visible GPU (``"NVIDIA H100 80GB HBM3"``).

    Asked once per process (the answer is kept); the name each
    :class:`~weightlab.engine.events.Metrics` reports as ``device``.
    """
    try:
        gpus = tf.config.list_physical_devices("GPU")
    except Exception:  # noqa: BLE001  # pragma: no cover - broken driver setups: TF raises any kind
        return "CPU"
    if not gpus:
        return "CPU"
    try:
        details = tf.config.experimental.get_device_details(gpus[0])
        return str(details.get("device_name") or gpus[0].name)
    except Exception:  # noqa: BLE001  # pragma: no cover - details are optional; any TF failure: the plain name
        return gpus[0].name
