"""The engine worker process: builds the model and evaluates edits.

Started by :class:`weightlab.engine.client.EngineClient` in a ``spawn``-ed
child process through :func:`weightlab.engine.spawn.child_main` (entry point
:data:`weightlab.engine.spawn.WORKER`); :func:`main` is its entry point.
TensorFlow is imported inside :func:`main` only, after the child's output is
captured and its priority lowered, so importing this module is cheap.

Protocol (tuples over a :class:`multiprocessing.connection.Connection`):

Parent -> worker
    ``("open", request_id, model_path, data_path, trust, layout, batch_size, options)``
    (``options``: ``architecture``, ``signature``, ``output``, ``input`` of
    :func:`weightlab._tf.passes.open_session`)
    ``("evaluate", request_id, edited, tag)``
    ``("cancel",)``
    ``("shutdown",)``
Worker -> parent
    The event dataclasses of :mod:`weightlab.engine.events`.

The worker handles one request at a time. Between evaluation batches it reads
any message that has arrived; a newer ``evaluate``, an ``open``, ``cancel`` or
``shutdown`` stops the running evaluation, which is answered with
:class:`~weightlab.engine.events.Cancelled`. The baseline evaluation that
follows ``open`` is not stopped by a newer ``evaluate`` (which waits for it).
Of several queued ``evaluate`` requests only the newest runs; the others are
answered with ``Cancelled``.

The opened model lives in the session :func:`weightlab._tf.passes.open_session`
returns: an :class:`~weightlab._tf.session.EngineSession` for one-output
Keras models (incremental evaluation, activation cache; ``batch_size`` None
lets it choose), a :class:`~weightlab._tf.passes.PassSession` for
SavedModels, frozen graphs and several outputs;
``Progress`` events carry the running accuracy and its Wilson interval.
"""

from __future__ import annotations

import os
import time
import traceback
from collections import deque
from typing import Any

from ..core.dataset import load_heldout
from ..core.errors import WeightLabError
from ..engine.events import Cancelled, Failed, ModelReady, Progress, Ready, Result
from ..engine.quiet import install_child_output

_PROGRESS_INTERVAL = 0.05  # seconds between Progress events of one request


class _Worker:
    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.pending: deque[tuple] = deque()
        self.session: Any = None  # the EngineSession of the opened model, when evaluation is on
        self.reason: str | None = "no model is open"

    # -- messaging ---------------------------------------------------------------
    def send(self, event: object) -> None:
        self.conn.send(event)

    def _drain(self) -> None:
        while self.conn.poll():
            self.pending.append(self.conn.recv())

    def _superseded(self, kinds: set[str]) -> bool:
        return any(m[0] in kinds for m in self.pending)

    def _stopper(self, kinds: set[str]):
        def should_stop() -> bool:
            self._drain()
            return self._superseded(kinds)

        return should_stop

    def _progress(self, rid: int):
        last = [0.0]

        def progress(done: int, total: int, samples: int, correct: int) -> None:
            now = time.monotonic()
            if done == total or now - last[0] >= _PROGRESS_INTERVAL:
                last[0] = now
                self.send(Progress.running(rid, done, total, samples, correct))

        return progress

    # -- main loop -----------------------------------------------------------------
    def run(self) -> None:
        import tensorflow as tf

        from . import runtime

        self.rt = runtime
        self.send(Ready(device=runtime.device_name(), tensorflow_version=tf.__version__))
        while True:
            if self.pending:
                msg = self.pending.popleft()
            else:
                try:
                    msg = self.conn.recv()
                except (EOFError, OSError):
                    return  # parent went away
            kind = msg[0]
            if kind == "shutdown":
                return
            if kind == "cancel":
                continue  # nothing running
            self._drain()
            if kind == "evaluate":
                if self._superseded({"evaluate", "open", "cancel", "shutdown"}):
                    self.send(Cancelled(msg[1]))
                    continue
                self._evaluate(*msg[1:])
            elif kind == "open":
                if self._superseded({"open", "shutdown"}):
                    self.send(Cancelled(msg[1]))
                    continue
                self._open(*msg[1:])
            else:  # pragma: no cover - protocol error
                self.send(Failed(-1, f"engine received an unknown request {kind!r}"))

    # -- requests -----------------------------------------------------------------------
    def _open(
        self,
        rid: int,
        model_path: str,
        data_path: str | None,
        trust: bool,
        layout: Any,
        batch_size: int | None,
        options: dict[str, Any] | None = None,
    ) -> None:
        import keras

        from .passes import open_session

        self.session, self.reason = None, "no model is open"
        keras.backend.clear_session()
        info: dict[str, Any] = {}

        def refuse(reason: str) -> None:
            self.reason = reason
            self.send(ModelReady(rid, ok=False, reason=reason, **info))

        try:
            session = open_session(
                model_path, trust=trust, layout=layout, batch_size=batch_size, **(options or {})
            )
        except WeightLabError as exc:
            return refuse(str(exc))
        except Exception as exc:  # noqa: BLE001 - any TF error while building: report it, keep the worker alive
            traceback.print_exc()
            return refuse(f"the model cannot be built: {type(exc).__name__}: {exc}")
        info.update(
            input_shape=tuple(session.input_shape),
            num_classes=session.num_classes,
            mapped=len(session.tmap.variables),
            unmapped=list(session.tmap.unmapped),
            outputs=list(session.output_names),
            signatures=list(session.signatures),
        )
        if data_path is None:
            return refuse("no held-out set: open a data file (.npz with x, and y for accuracy) to evaluate edits")
        try:
            data = load_heldout(data_path)
            session.set_heldout(data.x, data.y, data_path)
        except WeightLabError as exc:
            return refuse(str(exc))
        info.update(num_samples=session.num_samples, labels=session.labelled)
        self.session, self.reason = session, None
        self.send(ModelReady(rid, ok=True, reason=None, **info))
        self._run(rid, None, {}, baseline=True)

    def _evaluate(self, rid: int, edited: dict[str, Any], tag: object) -> None:
        if self.session is None:
            self.send(Failed(rid, f"evaluation is off: {self.reason}"))
            return
        self._run(rid, tag, edited, baseline=False)

    def _run(self, rid: int, tag: object, edited: dict[str, Any], *, baseline: bool) -> None:
        stop_on = {"open", "cancel", "shutdown"} if baseline else {"evaluate", "open", "cancel", "shutdown"}
        try:
            metrics = self.session.evaluate(
                edited, progress=self._progress(rid), should_stop=self._stopper(stop_on)
            )
        except self.rt.EvaluationCancelled:
            self.send(Cancelled(rid))
            return
        except WeightLabError as exc:
            self.send(Failed(rid, str(exc)))
            return
        except Exception as exc:  # noqa: BLE001 - any TF error: report it, keep the worker alive
            traceback.print_exc()  # to the captured output (the terminal with --verbose)
            self.send(Failed(rid, f"evaluation failed: {self.rt.run_error_message(exc)}"))
            return
        self.send(Result(rid, tag, baseline, metrics))


def main(conn: Any, niceness: int = 0, output: Any = None) -> None:
    """Entry point of the worker process: serve requests from ``conn`` until shutdown.

    Parameters
    ----------
    conn:
        The worker's end of a duplex :func:`multiprocessing.Pipe`.
    niceness:
        Added to the process's scheduling niceness (``os.nice``) before
        TensorFlow is imported; a window passes a positive value so that
        evaluation yields the CPU to drawing. Ignored where unsupported.
    output:
        The :class:`~weightlab.engine.quiet.ChildOutput` handle that takes this
        process's stdout and stderr (TensorFlow's log lines); None keeps the
        parent's.
    """
    install_child_output(output)
    lower_priority(niceness)
    try:
        _Worker(conn).run()
    except (BrokenPipeError, EOFError):
        pass  # parent closed the pipe
    finally:
        try:
            conn.close()
        except OSError:
            pass


def lower_priority(niceness: int) -> None:
    """Raise this process's niceness by ``niceness`` (POSIX ``nice(2)``); no-op when 0 or unsupported."""
    if niceness > 0 and hasattr(os, "nice"):
        try:
            os.nice(niceness)
        except OSError:
            pass
