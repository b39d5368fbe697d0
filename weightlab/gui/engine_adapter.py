"""Qt face of the evaluation engine: :class:`EngineAdapter`.

:class:`weightlab.engine.EngineClient` calls its ``on_event`` callback on a
background reader thread. The adapter forwards each event through a Qt signal,
which Qt queues to the GUI thread, and only there re-emits it as a typed signal.
Widgets are never touched from the reader thread.

Stale events are dropped: only the latest ``open`` request and the latest
``evaluate`` request are reported; a result of an evaluation that a newer one
replaced never reaches the window.

When the engine package is missing (or fails to import) the adapter still
works: :attr:`available` is False and :attr:`unavailable_reason` says why.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Qt, Signal, Slot

#: Niceness added to the engine worker process started by the window: its
#: TensorFlow start-up and evaluation passes yield the CPU to drawing, so the
#: window keeps answering on a machine with few cores (benchmarks/bench_gui.py).
ENGINE_NICENESS = 10


def _load_engine() -> tuple[Any, str]:
    """Return ``(EngineClient subclass or None, reason when None)``; its workers run at lower priority."""
    try:
        from weightlab.engine import EngineClient
    except Exception as e:  # noqa: BLE001 - any import failure means "no engine"
        return None, f"evaluation engine unavailable ({type(e).__name__}: {e})"

    class BackgroundEngineClient(EngineClient):
        def __init__(self, on_event: Any, **kwargs: Any):
            super().__init__(on_event, niceness=ENGINE_NICENESS, **kwargs)

    return BackgroundEngineClient, ""


def metric(metrics: Any, key: str, default: Any = None) -> Any:
    """Read ``key`` from a metrics object or dict (the engine may send either)."""
    if isinstance(metrics, Mapping):
        return metrics.get(key, default)
    return getattr(metrics, key, default)


class _EventRelay(QObject):
    """Carries engine events from the client's reader thread to the adapter on the GUI thread.

    It has no Qt parent: the client holds its ``emit`` for as long as it may
    call back. When the adapter (or the window owning it) is deleted first,
    Qt drops the connection and late events go nowhere, instead of into a
    deleted object.
    """

    event = Signal(object)


class EngineAdapter(QObject):
    """Wraps an ``EngineClient``; re-emits its events as Qt signals on the GUI thread.

    Parameters
    ----------
    client_factory:
        ``factory(on_event) -> client`` with the ``EngineClient`` interface;
        defaults to :class:`weightlab.engine.EngineClient` (tests pass fakes).
    enabled:
        False gives an adapter that never starts a worker (evaluation off).

    Signals
    -------
    ready(event):
        ``Ready(device, tensorflow_version)``: the worker started.
    modelReady(event):
        ``ModelReady``: the model was built (``ok``) or why evaluation is off (``reason``).
    progress(done, total):
        Batches evaluated by the current request.
    estimate(event):
        The same ``Progress`` event with its running estimate: ``samples``,
        ``accuracy`` and the 95% Wilson interval ``ci_low``/``ci_high``
        (``nan`` when the engine does not report them).
    result(event):
        ``Result(request_id, tag, baseline, metrics)`` of the latest request.
    failed(message):
        The latest request failed.
    crashed(message):
        The worker died; the client restarts it and re-opens the model.
    """

    ready = Signal(object)
    modelReady = Signal(object)
    progress = Signal(int, int)
    estimate = Signal(object)
    result = Signal(object)
    failed = Signal(str)
    crashed = Signal(str)

    def __init__(self, parent: QObject | None = None, client_factory: Any = None, *, enabled: bool = True):
        super().__init__(parent)
        if not enabled:
            client_factory, reason = None, "evaluation is disabled"
        elif client_factory is None:
            client_factory, reason = _load_engine()
        else:
            reason = ""
        self._factory = client_factory
        self.unavailable_reason = reason
        self._client: Any = None
        self._open_id: Any = None
        self._eval_id: Any = None
        self._reopening = False
        self._device = ""
        self._relay = _EventRelay()
        self._relay.event.connect(self._dispatch, Qt.ConnectionType.QueuedConnection)

    # -- state --------------------------------------------------------------
    @property
    def available(self) -> bool:
        """True when the engine package could be imported."""
        return self._factory is not None

    @property
    def running(self) -> bool:
        """True when a worker client has been started and not shut down."""
        return self._client is not None

    def supports(self, option: str) -> bool:
        """True when the engine client's ``open`` takes keyword ``option``.

        Checked at run time with :func:`inspect.signature`, so the window only
        offers choices (``architecture``, ``signature``, ``output``) that the
        installed engine understands.
        """
        opener = getattr(self._factory, "open", None)
        if opener is None:
            return False
        try:
            return option in inspect.signature(opener).parameters
        except (TypeError, ValueError):
            return False

    # -- commands (GUI thread) ----------------------------------------------
    def open(
        self,
        model_path: str | Path,
        data_path: str | Path | None = None,
        *,
        trust: bool = False,
        **options: Any,
    ) -> bool:
        """Start the worker if needed and ask it to build the model and evaluate the baseline.

        ``options`` (``architecture=``, ``signature=``, ``output=``) are passed
        on when set and :meth:`supports` them; others are dropped. Returns False
        (and does nothing) when the engine is unavailable.
        """
        if not self.available:
            return False
        if self._client is None:
            try:
                self._client = self._factory(self._post)
                self._client.start()
            except Exception as e:  # noqa: BLE001 - report, keep the window alive
                self._client = None
                self.unavailable_reason = f"evaluation engine failed to start: {e}"
                return False
        self._eval_id = None
        extra = {k: (str(v) if isinstance(v, Path) else v) for k, v in options.items()
                 if v is not None and self.supports(k)}
        self._open_id = self._client.open(
            str(model_path), str(data_path) if data_path is not None else None, trust=trust, **extra
        )
        return True

    def evaluate(self, edited: Mapping[str, np.ndarray], tag: Any = None) -> None:
        """Evaluate the model with ``edited`` tensors; a newer call supersedes this one."""
        if self._client is None:
            return
        self._eval_id = self._client.evaluate(dict(edited), tag=tag)

    def cancel(self) -> None:
        """Cancel the running evaluation, if any; its result will be dropped."""
        self._eval_id = None
        if self._client is not None:
            self._client.cancel()

    def shutdown(self, timeout: float = 5) -> None:
        """Stop the worker process (idempotent)."""
        client, self._client = self._client, None
        self._open_id = self._eval_id = None
        if client is not None:
            client.shutdown(timeout=timeout)

    @property
    def device(self) -> str:
        """Worker device description once known (``""`` before)."""
        return self._device

    # -- events ---------------------------------------------------------------
    def _post(self, ev: Any) -> None:
        """Engine callback (reader thread): queue ``ev`` to the GUI thread."""
        self._relay.event.emit(ev)

    def _is_current(self, request_id: Any) -> bool:
        return request_id is not None and request_id in (self._open_id, self._eval_id)

    @Slot(object)
    def _dispatch(self, ev: Any) -> None:
        if self._client is None:
            return  # shut down: late events are ignored
        kind = type(ev).__name__
        rid = getattr(ev, "request_id", None)
        if kind == "Ready":
            self._device = str(getattr(ev, "device", ""))
            self.ready.emit(ev)
        elif kind == "ModelReady":
            if self._reopening:
                # After a crash the client re-opens under its own request id.
                self._open_id, self._reopening = rid, False
            if rid == self._open_id:
                self.modelReady.emit(ev)
        elif kind == "Progress":
            if self._is_current(rid):
                self.progress.emit(int(ev.done), int(ev.total))
                self.estimate.emit(ev)
        elif kind == "Result":
            if self._is_current(rid):
                self.result.emit(ev)
        elif kind == "Failed":
            if self._is_current(rid):
                self.failed.emit(str(ev.message))
        elif kind == "Crashed":
            self._eval_id = None
            self._reopening = self._open_id is not None
            code = getattr(ev, "exitcode", None)
            what = getattr(ev, "message", "") or "restarting it"
            self.crashed.emit(f"Evaluation worker crashed (exit {code}): {what}")
        # Cancelled and unknown events need no reaction.
