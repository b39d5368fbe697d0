"""The engine worker process: builds the model and evaluates edits.

Started by :class:`weightlab.engine.client.EngineClient` in a ``spawn``-ed
child process; :func:`main` is its entry point. TensorFlow is imported inside
:func:`main` only, so importing this module is cheap and TF-free.

Protocol (tuples over a :class:`multiprocessing.connection.Connection`):

Parent -> worker
    ``("open", request_id, model_path, data_path, trust, layout, batch_size)``
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
"""

from __future__ import annotations

import os
import time
import traceback
from collections import deque
from typing import Any

from ..core.errors import WeightLabError
from .events import Cancelled, Failed, ModelReady, Progress, Ready, Result

_PROGRESS_INTERVAL = 0.05  # seconds between Progress events of one request


class _State:
    """What the worker holds for the opened model."""

    def __init__(self) -> None:
        self.model: Any = None
        self.tmap: Any = None
        self.originals: dict[str, Any] = {}
        self.dirty: set[str] = set()
        self.x: Any = None
        self.y: Any = None
        self.data_path: str | None = None
        self.batch_size = 256
        self.reason: str | None = "no model is open"


class _Worker:
    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.pending: deque[tuple] = deque()
        self.state = _State()

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

        def progress(done: int, total: int) -> None:
            now = time.monotonic()
            if done == total or now - last[0] >= _PROGRESS_INTERVAL:
                last[0] = now
                self.send(Progress(rid, done, total))

        return progress

    # -- main loop -----------------------------------------------------------------
    def run(self) -> None:
        from . import evaluate as ev

        self.ev = ev
        import tensorflow as tf

        self.send(Ready(device=ev.device_name(), tensorflow_version=tf.__version__))
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
        batch_size: int,
    ) -> None:
        ev = self.ev
        import keras

        from ..core.dataset import conform_inputs, load_heldout
        from ..core.errors import DataError

        self.state = st = _State()
        keras.backend.clear_session()
        st.batch_size = batch_size
        info: dict[str, Any] = {}

        def refuse(reason: str) -> None:
            st.reason = reason
            self.send(ModelReady(rid, ok=False, reason=reason, **info))

        try:
            model = ev.build_model(model_path, trust=trust)
            in_shape, num_classes = ev.check_model_io(model, model_path)
        except WeightLabError as exc:
            return refuse(str(exc))
        info.update(input_shape=tuple(in_shape), num_classes=num_classes)
        if layout is None:
            layout = ev.file_layout(model_path) or ev.model_layout(model)
        tmap = ev.map_tensors(model, layout)
        st.model, st.tmap = model, tmap
        st.originals = {name: var.numpy().copy() for name, var in tmap.variables.items()}
        info.update(mapped=len(tmap.variables), unmapped=list(tmap.unmapped))
        if data_path is None:
            return refuse("no held-out set: open a data file (.npz with x and y) to evaluate edits")
        try:
            data = load_heldout(data_path)
            x = conform_inputs(data.x, in_shape, data_path)
            if int(data.y.max()) >= num_classes:
                raise DataError(
                    f"labels go up to {int(data.y.max())} but the model has {num_classes} output classes; "
                    "this held-out set does not fit the model",
                    data_path,
                )
        except WeightLabError as exc:
            return refuse(str(exc))
        in_dtype = keras.backend.standardize_dtype(model.inputs[0].dtype)
        st.x = x.astype(in_dtype, copy=False)
        st.y = data.y
        st.data_path = str(data_path)
        info.update(num_samples=int(data.num_samples))
        st.reason = None
        self.send(ModelReady(rid, ok=True, reason=None, **info))
        self._run(rid, None, baseline=True)

    def _evaluate(self, rid: int, edited: dict[str, Any], tag: object) -> None:
        st = self.state
        if st.reason is not None or st.model is None:
            self.send(Failed(rid, f"evaluation is off: {st.reason}"))
            return
        try:
            self.ev.assign_arrays(st.tmap, edited)  # validates everything before assigning
        except WeightLabError as exc:
            self.send(Failed(rid, str(exc)))
            return
        for name in st.dirty - set(edited):
            st.tmap.variables[name].assign(st.originals[name])
        st.dirty = set(edited)
        self._run(rid, tag, baseline=False)

    def _run(self, rid: int, tag: object, *, baseline: bool) -> None:
        st = self.state
        stop_on = {"open", "cancel", "shutdown"} if baseline else {"evaluate", "open", "cancel", "shutdown"}
        try:
            metrics = self.ev.evaluate(
                st.model,
                st.x,
                st.y,
                batch_size=st.batch_size,
                progress=self._progress(rid),
                should_stop=self._stopper(stop_on),
                data_path=st.data_path,
            )
        except self.ev.EvaluationCancelled:
            self.send(Cancelled(rid))
            return
        except WeightLabError as exc:
            self.send(Failed(rid, str(exc)))
            return
        except Exception as exc:  # a TF error: report, keep the worker alive
            traceback.print_exc()
            self.send(Failed(rid, f"evaluation failed: {type(exc).__name__}: {exc}"))
            return
        self.send(Result(rid, tag, baseline, metrics))


def main(conn: Any) -> None:
    """Entry point of the worker process: serve requests from ``conn`` until shutdown.

    Parameters
    ----------
    conn:
        The worker's end of a duplex :func:`multiprocessing.Pipe`.
    """
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    try:
        _Worker(conn).run()
    except (BrokenPipeError, EOFError):
        pass  # parent closed the pipe
    finally:
        try:
            conn.close()
        except OSError:
            pass
