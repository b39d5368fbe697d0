"""Test doubles shared by the window's tests: one fake engine client, in-memory sessions.

The fake engine stands in for :class:`weightlab.engine.client.EngineClient` behind
:class:`weightlab.gui.engine_adapter.EngineAdapter`: it records what the window
asks for and numbers the requests, and sends nothing by itself; a test sends
events with ``client.on_event(...)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from weightlab.core.model import ModelFile
from weightlab.core.session import EditSession


class FakeEngineClient:
    """Stands in for ``EngineClient``: records calls, numbers requests (1, 2, ...), sends nothing.

    Attributes
    ----------
    on_event:
        The adapter's callback; call it to deliver an engine event.
    opened:
        ``((model_path, data_path), {"architecture", "signature", "output"})`` per ``open``.
    evaluated:
        ``(request id, tag)`` per ``evaluate``.
    """

    def __init__(self, on_event):
        self.on_event = on_event
        self.ids = iter(range(1, 1_000_000))
        self.opened: list[tuple[tuple, dict]] = []
        self.evaluated: list[tuple[int, object]] = []
        self.cancelled = 0
        self.shut_down = False

    def start(self):
        pass

    def open(self, model_path, data_path=None, *, trust=False, architecture=None, signature=None, output=None):
        self.opened.append(((model_path, data_path), {"architecture": architecture, "signature": signature,
                                                       "output": output}))
        return next(self.ids)

    def evaluate(self, edited, tag=None):
        rid = next(self.ids)
        self.evaluated.append((rid, tag))
        return rid

    def cancel(self):
        self.cancelled += 1

    def shutdown(self, timeout=5):
        self.shut_down = True


class FakeEngine:
    """A client factory for ``EngineAdapter(client_factory=...)``: ``factory(on_event) -> FakeEngineClient``.

    ``clients`` lists the clients made, oldest first (the adapter makes a new
    one when it restarts the engine). It has ``open`` so the adapter can
    inspect the client's signature.
    """

    open = FakeEngineClient.open

    def __init__(self):
        self.clients: list[FakeEngineClient] = []

    def __call__(self, on_event) -> FakeEngineClient:
        self.clients.append(FakeEngineClient(on_event))
        return self.clients[-1]


def memory_session(
    path: str | Path,
    arrays: Mapping[str, np.ndarray],
    fmt: str = "memory",
    *,
    classes: Mapping[str, str] | None = None,
    attrs: Mapping[str, object] | None = None,
) -> EditSession:
    """A session over an in-memory model ``{"layer/weight": array}`` (layers are ``Dense`` unless named)."""
    layers = {name.rpartition("/")[0] for name in arrays}
    kinds = {layer: "Dense" for layer in layers} | dict(classes or {})
    return EditSession(ModelFile.from_arrays(arrays, path, format=fmt, classes=kinds, attrs=attrs))
