"""The application model: what the window shows and works on, without Qt.

A :class:`Workspace` holds the state that the main window used to keep in its
own fields: the edit session, the tensor on screen, the held-out set, the
evaluation options and trust, what the engine said about the model, the
comparison being made, the running edit (busy state), the neuron selection's
size and the engine's jobs. Every change of that state is announced as a
typed, frozen event to the subscribers (the window's controllers), which react
to the state and never call each other.

The workspace runs no model code, imports neither Qt nor TensorFlow, and is
driven from one thread (the window's): the events are delivered synchronously,
in subscription order, on the thread that changed the state.

Example
-------
>>> ws = Workspace()
>>> seen = []
>>> _ = ws.subscribe(seen.append, DataChanged)
>>> ws.set_data_path(None)   # no change: no event
>>> seen
[]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from weightlab.core.session import EditSession

__all__ = [
    "BusyChanged",
    "CurrentChanged",
    "DataChanged",
    "Event",
    "HistoryChanged",
    "ModelInfoChanged",
    "OptionsChanged",
    "Saved",
    "SelectionChanged",
    "SessionReplaced",
    "TensorsChanged",
    "TrustChanged",
    "Workspace",
]


@dataclass(frozen=True)
class Event:
    """Base of every workspace event."""


@dataclass(frozen=True)
class SessionReplaced(Event):
    """Another session (or none) is shown: ``old`` was dropped (its model not yet closed)."""

    session: EditSession | None
    old: EditSession | None
    data_path: Path | None


@dataclass(frozen=True)
class TensorsChanged(Event):
    """The session's current values changed for ``names`` (an edit, undo, redo, replay)."""

    names: frozenset[str]


@dataclass(frozen=True)
class HistoryChanged(Event):
    """The session's steps or position changed (also when no value changed, e.g. a step of an undone tail)."""

    position: int
    steps: int


@dataclass(frozen=True)
class Saved(Event):
    """The session was written to ``path`` (nothing is unsaved now)."""

    path: Path


@dataclass(frozen=True)
class CurrentChanged(Event):
    """The views now show tensor ``name`` (None: none)."""

    name: str | None


@dataclass(frozen=True)
class DataChanged(Event):
    """The held-out set is now ``path`` (None: none)."""

    path: Path | None


@dataclass(frozen=True)
class OptionsChanged(Event):
    """The engine ``open`` options (``architecture``, ``signature``, ``output``) are now ``options``."""

    options: Mapping[str, str]


@dataclass(frozen=True)
class TrustChanged(Event):
    """The evaluation may (or may not) run the model file's own code."""

    trust: bool


@dataclass(frozen=True)
class ModelInfoChanged(Event):
    """The engine described the model (its ``ModelReady`` event), or forgot it (None)."""

    info: Any


@dataclass(frozen=True)
class BusyChanged(Event):
    """A change of the session is running off the window's thread (``label``), or none is (None)."""

    label: str | None


@dataclass(frozen=True)
class SelectionChanged(Event):
    """The number of selected neurons of the shown tensor's layer."""

    count: int


Handler = Callable[[Any], None]


@dataclass
class _Subscription:
    handler: Handler
    types: tuple[type[Event], ...]
    active: bool = field(default=True)


class Workspace:
    """The window's state, with events.

    Parameters
    ----------
    jobs:
        The engine's jobs list (:class:`weightlab.app.jobs.JobList`), when the
        window shows jobs; the workspace only holds it.

    Attributes
    ----------
    jobs:
        As given.
    comparison_base:
        The session a comparison was asked for (None: no comparison pending);
        a comparison whose base is no longer :attr:`session` is dropped.
    """

    def __init__(self, jobs: Any = None):
        self.jobs = jobs
        self.comparison_base: EditSession | None = None
        self._session: EditSession | None = None
        self._current: str | None = None
        self._data_path: Path | None = None
        self._options: dict[str, str] = {}
        self._trust = False
        self._model_info: Any = None
        self._busy: str | None = None
        self._selected = 0
        self._changes = 0
        self._subscriptions: list[_Subscription] = []

    # -- events ------------------------------------------------------------------------
    def subscribe(self, handler: Handler, *types: type[Event]) -> Callable[[], None]:
        """Call ``handler(event)`` for every event of ``types`` (every event when none are given).

        Returns
        -------
        callable
            Unsubscribes ``handler`` (idempotent); an event being delivered
            is not delivered to it any more.
        """
        sub = _Subscription(handler, types or (Event,))
        self._subscriptions.append(sub)

        def unsubscribe() -> None:
            sub.active = False
            if sub in self._subscriptions:
                self._subscriptions.remove(sub)

        return unsubscribe

    def emit(self, event: Event) -> None:
        """Deliver ``event`` to its subscribers, in subscription order."""
        for sub in list(self._subscriptions):
            if sub.active and isinstance(event, sub.types):
                sub.handler(event)

    # -- session -------------------------------------------------------------------------
    @property
    def session(self) -> EditSession | None:
        """The edit session shown (None: no model)."""
        return self._session

    @property
    def changes(self) -> int:
        """How many times the shown session's values or history changed (an edit counter for open races)."""
        return self._changes

    def set_session(self, session: EditSession | None, data_path: Path | None = None) -> None:
        """Show ``session`` on held-out set ``data_path``: the current tensor, options and model info are reset.

        Emits :class:`SessionReplaced` (even when ``session`` is the one
        shown: a reload), then the reset state's events. The old session's
        model is not closed here: a subscriber that owns it does that.
        """
        old = self._session
        if old is not None:
            old.unsubscribe(self._on_session)
        self._session = session
        self._current = None
        self._data_path = data_path
        self._options = {}
        self._model_info = None
        self._selected = 0
        self.comparison_base = None
        if session is not None:
            session.subscribe(self._on_session)
        self.emit(SessionReplaced(session, old, data_path))

    def _on_session(self, changed: set[str]) -> None:
        # The history first: a subscriber reacting to the values (an evaluation
        # of this position) sees the steps that produced them.
        self._changes += 1
        self.history_changed()
        self.emit(TensorsChanged(frozenset(changed)))

    def history_changed(self) -> None:
        """Announce that the session's steps or position changed without a change of values."""
        s = self._session
        if s is not None:
            self.emit(HistoryChanged(s.position, len(s.steps)))

    def saved(self, path: Path) -> None:
        """Announce that the session was written to ``path``."""
        self.emit(Saved(Path(path)))

    # -- what is shown ------------------------------------------------------------------------
    @property
    def current(self) -> str | None:
        """The tensor on screen (None: none)."""
        return self._current

    def set_current(self, name: str | None) -> None:
        """Show tensor ``name``; always emits :class:`CurrentChanged` (showing it again refreshes it).

        Raises
        ------
        KeyError
            ``name`` is not a tensor of the shown model.
        """
        if name is not None and (self._session is None or name not in self._session.model.tensors):
            raise KeyError(f"no tensor {name!r} in the shown model")
        self._current = name
        self.emit(CurrentChanged(name))

    @property
    def selected_neurons(self) -> int:
        """How many neurons are selected."""
        return self._selected

    def set_selected_neurons(self, count: int) -> None:
        """Record the neuron selection's size (emits :class:`SelectionChanged` when it changed)."""
        if count != self._selected:
            self._selected = count
            self.emit(SelectionChanged(count))

    # -- evaluation ------------------------------------------------------------------------
    @property
    def data_path(self) -> Path | None:
        """The held-out ``.npz`` (None: none)."""
        return self._data_path

    def set_data_path(self, path: Path | None, *, force: bool = False) -> None:
        """Evaluate on ``path`` (emits :class:`DataChanged` when it changed, or always with ``force``)."""
        path = Path(path) if path is not None else None
        if path != self._data_path or force:
            self._data_path = path
            self.emit(DataChanged(path))

    @property
    def eval_options(self) -> dict[str, str]:
        """A copy of the engine ``open`` options."""
        return dict(self._options)

    def set_option(self, key: str, value: str | None) -> None:
        """Set (``value`` None: remove) one engine ``open`` option; always emits :class:`OptionsChanged`."""
        if value is None:
            self._options.pop(key, None)
        else:
            self._options[key] = str(value)
        self.emit(OptionsChanged(dict(self._options)))

    @property
    def trust(self) -> bool:
        """Whether the evaluation may run the model file's own code."""
        return self._trust

    def set_trust(self, trust: bool) -> None:
        """Allow (or not) the model's own code; emits :class:`TrustChanged` when it changed."""
        if bool(trust) != self._trust:
            self._trust = bool(trust)
            self.emit(TrustChanged(self._trust))

    @property
    def model_info(self) -> Any:
        """The engine's last ``ModelReady`` for the shown model (None: none yet)."""
        return self._model_info

    def set_model_info(self, info: Any) -> None:
        """Record the engine's description of the model (emits :class:`ModelInfoChanged`)."""
        self._model_info = info
        self.emit(ModelInfoChanged(info))

    # -- busy ------------------------------------------------------------------------------
    @property
    def busy(self) -> str | None:
        """The label of the change of the session running off the window's thread (None: none)."""
        return self._busy

    def set_busy(self, label: str | None) -> None:
        """Record that a change runs (``label``) or ended (None); emits :class:`BusyChanged` when it changed."""
        if label != self._busy:
            self._busy = label
            self.emit(BusyChanged(label))

    # -- derived facts the actions are enabled by ---------------------------------------------
    @property
    def has_session(self) -> bool:
        """A model is shown."""
        return self._session is not None

    @property
    def idle(self) -> bool:
        """A model is shown and no change of it is running."""
        return self._session is not None and self._busy is None

    def edited(self, names: Iterable[str] | None = None) -> bool:
        """Whether any of ``names`` (default: any tensor) differs from its stored values."""
        s = self._session
        if s is None:
            return False
        if names is None:
            return bool(s.edited_names)
        return any(s.is_edited(n) for n in names)
