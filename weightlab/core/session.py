"""An edit session over an opened model: current weights, history, undo/redo.

Arrays are copy-on-write: the session keeps the original values read from the
file (read lazily, cached, read-only) and, for each edited tensor, its current
array. An edit computes new arrays and never mutates old ones, so a state of the
model is a small mapping ``{edited name: array}`` and states next to each other
share all the arrays one edit did not touch.

History memory budget
---------------------
Each step keeps its edit forever, but the arrays of past states are kept only
within a memory budget. The session stores *checkpoints*: the state after every
``k``-th step (``k``, :attr:`EditSession.checkpoint_interval`, starts at 1 and
doubles whenever the history holds more than its budget, dropping every other
checkpoint). Undo, redo, :meth:`EditSession.goto` and switching a step off or
on restore the nearest checkpoint at or before the wanted position (or the
current state) and replay the edits after it; edits are deterministic, so a
replay gives the same bits as the first application. A replay therefore runs at
most ``k - 1`` edits, and ``k`` stays about ``steps * step_bytes / budget``.

The budget counts, honestly and once per buffer, the arrays held by
checkpoints that are not current values (arrays shared between checkpoints, or
views of one buffer, count once), plus the checkpoints' own dictionaries and
the arrays recorded steps hold themselves (a trained step's weights, which
no replay can recompute: only the other checkpoints can make room). The
current values are always held and not counted; the stored values read from
the file (the original cache) are not counted either
(:attr:`EditSession.original_nbytes` reports them). The default budget is
:data:`DEFAULT_HISTORY_BUDGET` (1 GiB, at most an eighth of the machine's
memory); the environment variable :data:`HISTORY_BUDGET_ENV` or the
``history_budget_bytes`` argument change it, and 0 keeps no past arrays at all
(every undo replays from the stored values).

Changes off the owner's thread
------------------------------
Every change of the session is a small value (:class:`ApplyEdit`,
:class:`ApplyEdits`, :class:`Goto`, :class:`SetStepEnabled`) taken in two
parts: :meth:`EditSession.prepare` does the heavy work (runs the edit, or the
replay) on any thread and changes nothing the owner can observe, and
:meth:`EditSession.commit`, on the thread that owns the session, swaps the
prepared state in (cheap), keeps the history's books and notifies listeners.
While a change is prepared the owner keeps reading the session (views call
:meth:`EditSession.array`). A commit raises :class:`StaleChange` when the
session changed after the prepare. The synchronous methods (``apply``,
``undo``, ``redo``, ``goto``, ``set_step_enabled``, ``apply_all``) are a
prepare and a commit on the calling thread. A prepare that records steps
(a recipe, a replay after a switched step) collects their checkpoints
within the budget on its own, so while it runs the history holds at most
twice its budget; the commit brings it back within it.
"""

from __future__ import annotations

import itertools
import os
import re
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from .edits import Edit
from .errors import RecipeError, WeightLabError
from .model import ModelFile, TensorInfo
from .recipe import RECIPE_VERSION, parse_recipe

if TYPE_CHECKING:
    from .diff import ModelDiff

#: Writes ``model`` with the given changed tensors to a new path (atomically).
SaveFunction = Callable[[ModelFile, Mapping[str, np.ndarray], Path], None]
#: Called with the set of canonical names whose values changed.
Listener = Callable[[set[str]], None]

#: The environment variable that sets the default history budget: bytes, or a
#: number with a ``K``/``M``/``G`` suffix (powers of 1024), e.g. ``512M``.
HISTORY_BUDGET_ENV = "WEIGHTLAB_HISTORY_BUDGET"


def _physical_memory() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, OSError, ValueError):  # not POSIX
        return None


def _default_budget() -> int:
    ram = _physical_memory()
    return min(1 << 30, ram // 8) if ram else 1 << 30


#: Default memory budget of a session's history, in bytes: 1 GiB, or an eighth
#: of the physical memory on machines with less than 8 GiB.
DEFAULT_HISTORY_BUDGET = _default_budget()

_SIZE = re.compile(r"\s*(\d+)\s*([kmg]?)i?b?\s*", re.IGNORECASE)


def parse_budget(text: str) -> int:
    """Parse a memory size: ``"1073741824"``, ``"512M"``, ``"2G"``, ``"64k"`` (powers of 1024).

    Raises
    ------
    ValueError
        When ``text`` is not such a size.
    """
    m = _SIZE.fullmatch(text)
    if not m or len(m.group(1)) > 18:
        raise ValueError(f"not a memory size: {text!r} (use bytes, or a number with K, M or G)")
    return int(m.group(1)) * {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2).lower()]


def history_budget_from_env() -> int:
    """The default history budget: :data:`HISTORY_BUDGET_ENV` when set, else :data:`DEFAULT_HISTORY_BUDGET`.

    Raises
    ------
    WeightLabError
        When the variable is set to something that is not a memory size.
    """
    text = os.environ.get(HISTORY_BUDGET_ENV, "").strip()
    if not text:
        return DEFAULT_HISTORY_BUDGET
    try:
        return parse_budget(text)
    except ValueError as e:
        raise WeightLabError(f"environment variable {HISTORY_BUDGET_ENV}: {e}") from None


#: One counter for the tensor versions of every session in the process (see EditSession.version).
_VERSIONS = itertools.count(1)


@dataclass(frozen=True)
class Step:
    """One recorded edit.

    Attributes
    ----------
    edit:
        The edit (kept for the whole life of the session).
    enabled:
        False when the step is switched off (it then changes nothing).
    changed:
        Canonical names of the tensors the step gave new arrays when it was last
        applied or replayed (empty while it is switched off).
    """

    edit: Edit
    enabled: bool = True
    changed: frozenset[str] = frozenset()


def _freeze(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def _buffer(a: np.ndarray) -> np.ndarray:
    """The array that owns ``a``'s memory (``a`` itself unless it is a view)."""
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


class _StateSource:
    """Current and stored values for an edit replayed on a past state."""

    __slots__ = ("_state", "_session")

    def __init__(self, state: Mapping[str, np.ndarray], session: EditSession):
        self._state = state
        self._session = session

    def array(self, name: str) -> np.ndarray:
        cur = self._state.get(name)
        return cur if cur is not None else self._session.original(name)

    def original(self, name: str) -> np.ndarray:
        return self._session.original(name)


class StaleChange(RuntimeError):
    """The session changed between :meth:`EditSession.prepare` and :meth:`EditSession.commit`.

    Not a :class:`~weightlab.core.errors.WeightLabError`: nothing is wrong
    with the file or the edit; the prepared change was computed on a state
    that is gone, and nothing of it was applied. Prepare it again.
    """


@dataclass(frozen=True)
class ApplyEdit:
    """Apply ``edit`` as a new step after the current position (dropping any redo tail)."""

    edit: Edit


@dataclass(frozen=True)
class ApplyEdits:
    """Apply ``edits`` in order as one transaction (a recipe); ``source`` names it in errors."""

    edits: tuple[Edit, ...]
    source: str = "recipe"

    def __post_init__(self) -> None:
        object.__setattr__(self, "edits", tuple(self.edits))


@dataclass(frozen=True)
class Goto:
    """Undo or redo until ``position`` steps are applied (undo and redo are a ``Goto``)."""

    position: int


@dataclass(frozen=True)
class SetStepEnabled:
    """Switch step ``index`` off or on; the steps after it are replayed."""

    index: int
    enabled: bool


#: A change of an :class:`EditSession`, for :meth:`EditSession.prepare`.
Change = ApplyEdit | ApplyEdits | Goto | SetStepEnabled


@dataclass(frozen=True)
class _Snapshot:
    """What a prepare reads of the session, taken at once under the session's lock.

    ``steps`` is the session's own list: a commit only appends to it or
    replaces it, so its first ``nsteps`` entries stay as they were.
    ``start`` is the known state closest at or before the position the
    change replays to (``(position, a copy of the state)``), when it needs one.
    """

    generation: int
    steps: list[Step]
    nsteps: int
    pos: int
    current: dict[str, np.ndarray]
    interval: int
    start: tuple[int, dict[str, np.ndarray]] | None


class _Collector:
    """States a prepare will add as checkpoints, thinned while collected to stay within the budget.

    Positions are kept at multiples of :attr:`interval` (the session's
    interval when the prepare started, doubled whenever the collected
    buffers, each counted once, exceed the budget).
    """

    def __init__(self, interval: int, budget: int):
        self.interval = interval
        self.budget = budget
        self.states: dict[int, dict[str, np.ndarray]] = {}
        self._held: dict[int, list[Any]] = {}  # id(buffer) -> [buffer, refcount]
        self._nbytes = 0  # held buffers and the states' dictionaries

    def _hold(self, arr: np.ndarray, delta: int) -> None:
        buf = _buffer(arr)
        entry = self._held.setdefault(id(buf), [buf, 0])
        if entry[1] == 0:
            self._nbytes += buf.nbytes
        entry[1] += delta
        if entry[1] == 0:
            del self._held[id(buf)]
            self._nbytes -= buf.nbytes

    def offer(self, position: int, state: Mapping[str, np.ndarray]) -> None:
        if position % self.interval:
            return
        snap = self.states[position] = dict(state)
        self._nbytes += sys.getsizeof(snap)
        for a in snap.values():
            self._hold(a, 1)
        while self.states and self._nbytes > self.budget:
            self.interval *= 2
            for p in [p for p in self.states if p % self.interval]:
                dropped = self.states.pop(p)
                self._nbytes -= sys.getsizeof(dropped)
                for a in dropped.values():
                    self._hold(a, -1)


@dataclass(frozen=True, eq=False)
class Prepared:
    """A change computed by :meth:`EditSession.prepare`, to be swapped in by :meth:`EditSession.commit`.

    Attributes
    ----------
    change:
        The change it was prepared from.
    changed:
        Canonical names whose current values the commit will change (for a
        switched step: every name whose array the replay replaced, which may
        name more than moved, never less).
    """

    change: Change
    changed: frozenset[str]
    _session: EditSession = field(repr=False)
    _generation: int = field(repr=False)
    _noop: bool = field(default=False, repr=False)
    _steps: list[Step] | None = field(default=None, repr=False)  # the new step list
    _append: list[Step] | None = field(default=None, repr=False)  # steps added after ``_keep``
    # Checkpoints after ``_keep`` are dropped, and a saved state after it is no longer reachable.
    _keep: int | None = field(default=None, repr=False)
    _position: int = field(default=0, repr=False)
    _current: dict[str, np.ndarray] | None = field(default=None, repr=False)
    _collected: _Collector | None = field(default=None, repr=False)


class EditSession:
    """Current weights of a model file plus the history of edits applied to them.

    Parameters
    ----------
    model:
        The opened file. The session reads from it; it never writes to it.
    saver:
        Function that writes a model with changed tensors to a path; supplied by
        :func:`weightlab.open` from the format registry. Without one,
        :meth:`save` raises.
    history_budget_bytes:
        Memory the history may hold for past states, in bytes (see the module
        docstring); None takes :func:`history_budget_from_env`.

    Raises
    ------
    WeightLabError
        When ``history_budget_bytes`` is None and :data:`HISTORY_BUDGET_ENV`
        is not a memory size.
    ValueError
        When ``history_budget_bytes`` is negative.
    """

    def __init__(
        self,
        model: ModelFile,
        saver: SaveFunction | None = None,
        *,
        history_budget_bytes: int | None = None,
    ):
        self.model = model
        self._saver = saver
        self._original: dict[str, np.ndarray] = {}
        self._current: dict[str, np.ndarray] = {}
        self._steps: list[Step] = []
        self._pos = 0
        self._saved_pos = 0
        self._listeners: list[Listener] = []
        # History storage: checkpoints ``position -> state`` at multiples of
        # ``_interval`` (position 0, the stored values, is the empty state);
        # ``_held`` counts, per owning buffer, how many checkpoint entries hold it.
        self._checkpoints: dict[int, dict[str, np.ndarray]] = {0: {}}
        self._interval = 1
        self._held: dict[int, list[Any]] = {}  # id(buffer) -> [buffer, refcount]
        self._held_bytes = 0
        self._dict_bytes = 0
        self._name_sets: dict[frozenset[str], frozenset[str]] = {}
        # Arrays recorded steps hold themselves (a trained step's weights):
        # id(buffer) -> [buffer, number of steps]; they count toward the budget.
        self._pinned: dict[int, list[Any]] = {}
        # Per-tensor versions: 0 = the stored values; every change of a tensor's
        # current values (apply, undo, redo, goto, step switch) stamps a new
        # number from one process-wide counter (_VERSIONS), so versions of two
        # sessions (a file reopened, a journal restored) never collide.
        self._versions: dict[str, int] = {}
        budget = history_budget_from_env() if history_budget_bytes is None else int(history_budget_bytes)
        if budget < 0:
            raise ValueError(f"history_budget_bytes must be >= 0; got {budget}")
        self._budget = budget
        # Guards what a prepare snapshots against a commit on the owner's thread.
        self._lock = threading.Lock()
        self._generation = 0  # +1 with every commit that changes the session

    # -- values ---------------------------------------------------------------
    @property
    def tensors(self) -> Mapping[str, TensorInfo]:
        """The model's tensors, canonical name -> :class:`~weightlab.core.model.TensorInfo`, in model order.

        Read-only (a view of ``model.tensors``): ``shape`` (Keras axis order),
        ``dtype`` (NumPy name, ``"float32"``), ``layer``, ``weight`` and
        ``trainable`` of each tensor; no values are read. The values are
        :meth:`array` (current) and :meth:`original` (as stored).
        """
        return MappingProxyType(self.model.tensors)

    def diff(self) -> ModelDiff:
        """Per-tensor change of the current values against the stored ones.

        One :class:`~weightlab.core.diff.TensorDiff` per tensor, in model
        order: entries changed, relative change ``||current - stored||_2 /
        ||stored||_2`` and the largest absolute change (in the tensor's
        units). Unedited tensors are in it with no change; ``changed()``
        keeps the edited ones. Labels: ``"original"`` and ``"current"``.

        Reads each unedited tensor's stored values once, without caching
        them (a large model is not held in memory for a diff).

        Returns
        -------
        ModelDiff
            Stored (``a``) against current (``b``) values.
        """
        from .diff import model_diff

        # Both sides of an unedited tensor are one array, read once (one
        # read, and the diff may see at once that nothing changed).
        last: list[Any] = [None, None]  # [name, array]

        def stored(name: str) -> np.ndarray:
            if last[0] == name:
                return last[1]
            arr = self._original.get(name)
            if arr is None:
                arr = self.original(name, cache=False)
            last[0], last[1] = name, arr
            return arr

        def current(name: str) -> np.ndarray:
            cur = self._current.get(name)
            return cur if cur is not None else stored(name)

        return model_diff(list(self.model.tensors), stored, current, "original", "current")

    def _repr_html_(self) -> str:
        """Rich display in Jupyter: layers and tensors with shape, sparsity and a histogram sparkline."""
        from .richdisplay import session_html

        return session_html(self)

    def original(self, name: str, *, cache: bool = True) -> np.ndarray:
        """Values of tensor ``name`` as stored in the file (read-only array).

        With ``cache=False`` a tensor not read before is read from the file
        and not kept (for one-off passes over a large model, e.g. counting
        zeros, that must not hold the whole model in memory).
        """
        arr = self._original.get(name)
        if arr is None:
            arr = _freeze(self.model.read(name))
            if cache:  # two threads may read it at once: the first array cached is the one
                arr = self._original.setdefault(name, arr)
        return arr

    def peek(self, name: str) -> np.ndarray:
        """Current values of ``name`` without caching an unedited tensor's stored values."""
        cur = self._current.get(name)
        return cur if cur is not None else self.original(name, cache=False)

    def array(self, name: str) -> np.ndarray:
        """Current values of tensor ``name`` (read-only array)."""
        cur = self._current.get(name)
        return cur if cur is not None else self.original(name)

    def is_loaded(self, name: str) -> bool:
        """True when tensor ``name``'s current values are in memory (edited, or read before)."""
        return name in self._current or name in self._original

    def is_edited(self, name: str) -> bool:
        """True when tensor ``name`` currently differs from the stored values."""
        return name in self._current

    def version(self, name: str) -> int:
        """Version of tensor ``name``'s current values: 0 until it first changes.

        Every change of the current values (apply, undo, redo, goto, a step
        switched off or on) gives the changed tensors a new number from one
        counter shared by every session of the process, so two equal nonzero
        versions mean the same array, also across sessions. A
        tensor reverted to its stored values gets a new version too.
        """
        return self._versions.get(name, 0)

    def edited_versions(self) -> dict[str, tuple[int, np.ndarray]]:
        """``{name: (version, current array)}`` for every edited tensor, in model order.

        What an evaluation engine needs to mirror the session: it re-sends a
        tensor only when its version changed, and treats a name that left
        this mapping as back to its stored values.
        """
        return {n: (self._versions.get(n, 0), self._current[n]) for n in self.edited_names}

    @property
    def edited_names(self) -> list[str]:
        """Canonical names of tensors whose current values differ from the file, in model order."""
        return [n for n in self.model.tensors if n in self._current]

    def edited_arrays(self) -> dict[str, np.ndarray]:
        """``{name: current array}`` for every edited tensor (what a save writes)."""
        return {n: self._current[n] for n in self.edited_names}

    # -- history memory -------------------------------------------------------
    @property
    def history_budget_bytes(self) -> int:
        """Memory the history may hold for past states, in bytes; settable (>= 0)."""
        return self._budget

    @history_budget_bytes.setter
    def history_budget_bytes(self, value: int) -> None:
        if int(value) < 0:
            raise ValueError(f"history_budget_bytes must be >= 0; got {value}")
        with self._lock:
            self._budget = int(value)
            self._enforce_budget()

    @property
    def history_nbytes(self) -> int:
        """Bytes the history holds beyond the current values (what the budget bounds).

        Each buffer held by a checkpoint or by a recorded step (a trained
        step's weights) and not part of the current values counts once, plus
        the checkpoints' dictionaries.
        """
        seen: set[int] = set()
        in_current = 0
        for a in self._current.values():
            key = id(_buffer(a))
            if key not in seen:
                seen.add(key)
                if key in self._held:
                    in_current += self._held[key][0].nbytes
        pinned = sum(
            buf.nbytes for key, (buf, _) in self._pinned.items() if key not in self._held and key not in seen
        )
        return self._held_bytes - in_current + self._dict_bytes + pinned

    @property
    def original_nbytes(self) -> int:
        """Bytes of stored values read from the file and cached (not part of the budget)."""
        return sum(a.nbytes for a in self._original.values())

    @property
    def checkpoint_interval(self) -> int:
        """Steps between two stored states; a replay runs fewer edits than this."""
        return self._interval

    def _hold(self, arr: np.ndarray, delta: int) -> None:
        buf = _buffer(arr)
        key = id(buf)
        entry = self._held.get(key)
        if entry is None:
            entry = self._held[key] = [buf, 0]
            self._held_bytes += buf.nbytes
        entry[1] += delta
        if entry[1] == 0:
            del self._held[key]
            self._held_bytes -= buf.nbytes

    def _pin(self, steps: Iterable[Step], delta: int) -> None:
        """Count (``delta`` 1) or stop counting (-1) the arrays ``steps``' edits hold themselves."""
        for step in steps:
            held = getattr(step.edit, "held_arrays", None)
            for a in held().values() if held is not None else ():
                buf = _buffer(a)
                entry = self._pinned.setdefault(id(buf), [buf, 0])
                entry[1] += delta
                if entry[1] == 0:
                    del self._pinned[id(buf)]

    def _add_checkpoint(self, position: int, state: dict[str, np.ndarray]) -> None:
        if position in self._checkpoints:
            self._drop_checkpoint(position)
        snap = dict(state)
        self._checkpoints[position] = snap
        for a in snap.values():
            self._hold(a, 1)
        self._dict_bytes += sys.getsizeof(snap)

    def _drop_checkpoint(self, position: int) -> None:
        snap = self._checkpoints.pop(position)
        for a in snap.values():
            self._hold(a, -1)
        self._dict_bytes -= sys.getsizeof(snap)

    def _drop_checkpoints_after(self, position: int) -> None:
        for p in [p for p in self._checkpoints if p > position]:
            self._drop_checkpoint(p)  # never position 0: the stored values

    def _checkpoint_due(self, position: int) -> bool:
        return position % self._interval == 0

    def _enforce_budget(self) -> None:
        """Double the checkpoint interval (dropping every other checkpoint) while over budget."""
        while self.history_nbytes > self._budget and len(self._checkpoints) > 1:
            self._interval *= 2
            for p in [p for p in self._checkpoints if p % self._interval]:
                self._drop_checkpoint(p)

    def _intern(self, names: Iterable[str]) -> frozenset[str]:
        key = frozenset(names)
        return self._name_sets.setdefault(key, key)

    # -- replay -----------------------------------------------------------------
    def _merge(self, state: dict[str, np.ndarray], new: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Write an edit's result into ``state``; return the frozen arrays."""
        out = {}
        for name, arr in new.items():
            if arr.flags.writeable:
                arr = _freeze(arr)
            out[name] = arr
            if arr is self._original.get(name):
                state.pop(name, None)
            else:
                state[name] = arr
        return out

    def _run(self, edit: Edit, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Apply ``edit`` to ``state`` (in place); return the arrays it gave new values."""
        return self._merge(state, edit.apply(self.model, _StateSource(state, self)))

    def _snapshot(self, start_at: int | None = None) -> _Snapshot:
        """Read the session for a prepare; with ``start_at``, also the state to replay from."""
        with self._lock:
            return _Snapshot(
                self._generation,
                self._steps,
                len(self._steps),
                self._pos,
                dict(self._current),
                self._interval,
                None if start_at is None else self._start_for(start_at),
            )

    def _start_for(self, position: int) -> tuple[int, dict[str, np.ndarray]]:
        """The known state closest at or before ``position``: ``(its position, a copy)``."""
        best = position - position % self._interval
        while best not in self._checkpoints:  # 0, the stored values, is always there
            best -= self._interval
        if best < self._pos <= position:
            return self._pos, dict(self._current)
        return best, dict(self._checkpoints[best])

    # -- history --------------------------------------------------------------
    @property
    def steps(self) -> list[Step]:
        """All recorded steps, including undone ones after :attr:`position`."""
        return list(self._steps)

    @property
    def position(self) -> int:
        """Number of steps currently applied (steps ``[0, position)``)."""
        return self._pos

    @property
    def history(self) -> tuple[Step, ...]:
        """Every recorded step, oldest first: the applied ones, then the undone ones.

        ``history[:position]`` are applied (a step switched off has
        ``enabled`` False and changes nothing); ``history[position:]`` were
        undone and :meth:`redo` re-applies them in order (a new edit drops
        them). Each :class:`Step` holds its edit, whether it is on, and the
        canonical names it changed. A tuple: a snapshot that later changes of
        the session do not alter.
        """
        return tuple(self._steps)

    @property
    def applied_edits(self) -> list[Edit]:
        """Edits currently applied and switched on, oldest first (what a recipe holds)."""
        return [s.edit for s in self._steps[: self._pos] if s.enabled]

    @property
    def can_undo(self) -> bool:
        """True when a step is applied (:meth:`undo` has something to undo)."""
        return self._pos > 0

    @property
    def can_redo(self) -> bool:
        """True when an undone step follows :attr:`position` (:meth:`redo` has something to redo)."""
        return self._pos < len(self._steps)

    @property
    def is_modified(self) -> bool:
        """True when the applied history differs from the last save (or open)."""
        return self._pos != self._saved_pos

    # -- changes in two parts -------------------------------------------------------
    def prepare(self, change: Change) -> Prepared:
        """Compute ``change`` without applying it: the heavy part, on any thread.

        Runs the edits or the replay the change needs on a snapshot of the
        session and returns the new state. Nothing the session's owner can
        observe changes (stored values read from the file may be cached, as
        :meth:`array` does), so the owner may keep reading the session while
        this runs on another thread. Apply the result with :meth:`commit` on
        the owner's thread.

        Parameters
        ----------
        change:
            An :class:`ApplyEdit`, :class:`ApplyEdits`, :class:`Goto` or
            :class:`SetStepEnabled`.

        Returns
        -------
        Prepared
            The change with its new state; ``Prepared.changed`` names the
            tensors whose current values the commit will change.

        Raises
        ------
        RecipeError
            When an edit does not fit the model (for :class:`ApplyEdits`, the
            message names the source and the step).
        IndexError
            When a :class:`Goto` position or a :class:`SetStepEnabled` index
            is out of range.
        TypeError
            When ``change`` is not one of the change types.
        """
        if isinstance(change, ApplyEdit):
            return self._prepare_edits(self._snapshot(), change, (change.edit,), None)
        if isinstance(change, ApplyEdits):
            return self._prepare_edits(self._snapshot(), change, change.edits, change.source)
        if isinstance(change, Goto):
            n, position = len(self._steps), change.position
            if not 0 <= position <= n:
                raise IndexError(f"position must be in [0, {n}]; got {position}")
            return self._prepare_goto(self._snapshot(position), change)
        if isinstance(change, SetStepEnabled):
            n = len(self._steps)
            if not 0 <= change.index < n:
                raise IndexError(f"step index must be in [0, {n}); got {change.index}")
            return self._prepare_switch(self._snapshot(change.index), change)
        raise TypeError(f"not a session change: {change!r}")

    def _prepare_edits(
        self, snap: _Snapshot, change: Change, edits: tuple[Edit, ...], source: str | None
    ) -> Prepared:
        if not edits:
            return Prepared(change, frozenset(), self, snap.generation, _noop=True)
        state = dict(snap.current)
        steps: list[Step] = []
        changed: set[str] = set()
        collected = _Collector(snap.interval, self._budget)
        for i, edit in enumerate(edits, 1):
            if source is None:
                after = self._run(edit, state)
            else:
                try:
                    after = self._run(edit, state)
                except WeightLabError as e:
                    raise RecipeError(f"{source}, step {i} ({edit.op} {edit.target!r}): {e.message}") from None
            steps.append(Step(edit, True, self._intern(after)))
            changed |= after.keys()
            collected.offer(snap.pos + i, state)
        return Prepared(
            change, frozenset(changed), self, snap.generation,
            _append=steps, _keep=snap.pos, _position=snap.pos + len(steps), _current=state, _collected=collected,
        )

    def _prepare_goto(self, snap: _Snapshot, change: Goto) -> Prepared:
        position = change.position
        if not 0 <= position <= snap.nsteps:  # the session changed since prepare checked
            raise StaleChange(f"the session changed while {_describe(change)} was computed; nothing was applied")
        if position == snap.pos:
            return Prepared(change, frozenset(), self, snap.generation, _noop=True)
        lo, hi = sorted((position, snap.pos))
        changed: set[str] = set()
        for step in snap.steps[lo:hi]:
            changed |= step.changed
        assert snap.start is not None
        start, state = snap.start
        for step in snap.steps[start:position]:
            if step.enabled:
                self._run(step.edit, state)
        return Prepared(change, frozenset(changed), self, snap.generation, _position=position, _current=state)

    def _prepare_switch(self, snap: _Snapshot, change: SetStepEnabled) -> Prepared:
        index, enabled = change.index, change.enabled
        if not 0 <= index < snap.nsteps:  # the session changed since prepare checked
            raise StaleChange(f"the session changed while {_describe(change)} was computed; nothing was applied")
        steps = snap.steps[: snap.nsteps]
        if steps[index].enabled == enabled:
            return Prepared(change, frozenset(), self, snap.generation, _noop=True)
        flags = [s.enabled for s in steps]
        flags[index] = enabled
        # States up to ``index`` are unchanged: replay the steps after it from
        # the closest known state, collecting checkpoints (within the budget).
        assert snap.start is not None
        start, state = snap.start
        new_current = snap.current if snap.pos <= index else None
        replayed = steps[:start]
        collected = _Collector(snap.interval, self._budget)
        for i in range(start, len(steps)):
            step = steps[i]
            changed: frozenset[str] = frozenset()
            if flags[i]:
                changed = self._intern(self._run(step.edit, state))
            replayed.append(Step(step.edit, flags[i], changed))
            if i + 1 > index:
                collected.offer(i + 1, state)
            if i + 1 == snap.pos and new_current is None:
                new_current = dict(state)
        assert new_current is not None  # snap.pos > index: set in the loop
        old = snap.current
        names = {n for n in old.keys() | new_current.keys() if old.get(n) is not new_current.get(n)}
        return Prepared(
            change, frozenset(names), self, snap.generation,
            _steps=replayed, _keep=index, _position=snap.pos, _current=new_current, _collected=collected,
        )

    def commit(self, prepared: Prepared) -> set[str]:
        """Swap a prepared change in, on the thread that owns the session; return the changed names.

        Cheap (no edit runs): replaces the state, keeps the history's
        checkpoints within the budget, gives the changed tensors new
        versions and calls the listeners.

        Raises
        ------
        StaleChange
            When the session changed since ``prepared`` was prepared (or it
            was committed already); nothing is applied then.
        ValueError
            When ``prepared`` was prepared by another session.
        """
        if prepared._session is not self:
            raise ValueError("this change was prepared by another session")
        with self._lock:
            if prepared._generation != self._generation:
                raise StaleChange(
                    f"the session changed while {_describe(prepared.change)} was computed; nothing was applied"
                )
            if prepared._noop:
                return set()
            self._generation += 1
            keep = prepared._keep
            if keep is not None:
                if prepared._steps is not None or len(self._steps) > keep:
                    self._drop_checkpoints_after(keep)
                if self._saved_pos > keep:
                    self._saved_pos = -1  # the saved state is no longer reachable
            if prepared._steps is not None:
                self._steps = prepared._steps
            if prepared._append:
                if keep is not None and len(self._steps) > keep:  # drop the redo tail
                    self._pin(self._steps[keep:], -1)
                    self._steps = self._steps[:keep]  # a new list: a snapshot may hold the old one
                self._steps.extend(prepared._append)
                self._pin(prepared._append, 1)
            assert prepared._current is not None
            self._pos, self._current = prepared._position, prepared._current
            collected = prepared._collected
            if collected is not None:
                while self._interval < collected.interval:
                    self._interval *= 2
                    for p in [p for p in self._checkpoints if p % self._interval]:
                        self._drop_checkpoint(p)
                for p, state in sorted(collected.states.items()):
                    if self._checkpoint_due(p):
                        self._add_checkpoint(p, state)
            self._enforce_budget()
            changed = set(prepared.changed)
            self._stamp(changed)
        self._notify(changed)
        return changed

    # -- synchronous changes (prepare + commit on the calling thread) ------------------
    def set_step_enabled(self, index: int, enabled: bool) -> set[str]:
        """Switch step ``index`` off or on; the weights are recomputed by replay.

        The steps after ``index`` are replayed, from the last stored state
        before it, with the new on/off state, so the result equals a history
        that never had (or always had) that step, bit for bit. Returns the
        names whose current values changed.

        Raises
        ------
        IndexError
            When there is no step ``index``.
        """
        return self.commit(self.prepare(SetStepEnabled(index, enabled)))

    def apply(self, edit: Edit) -> set[str]:
        """Apply ``edit``, record it, drop any redo tail; return the changed names.

        Raises
        ------
        RecipeError
            When the edit does not fit the model (unknown target, bad neuron).
        """
        return self.commit(self.prepare(ApplyEdit(edit)))

    def undo(self) -> set[str]:
        """Undo the last applied step; return the changed names (empty if none)."""
        if not self.can_undo:
            return set()
        return self.goto(self._pos - 1)

    def redo(self) -> set[str]:
        """Re-apply the next undone step; return the changed names (empty if none)."""
        if not self.can_redo:
            return set()
        return self.goto(self._pos + 1)

    def goto(self, position: int) -> set[str]:
        """Undo or redo until ``position`` steps are applied; return the changed names.

        The names are those the steps between the two positions changed.

        Raises
        ------
        IndexError
            When ``position`` is not in ``[0, len(steps)]``.
        """
        return self.commit(self.prepare(Goto(position)))

    # -- listeners --------------------------------------------------------------
    def subscribe(self, listener: Listener) -> None:
        """Call ``listener(changed_names)`` after every apply/undo/redo/goto."""
        self._listeners.append(listener)

    def unsubscribe(self, listener: Listener) -> None:
        """Stop calling ``listener``."""
        self._listeners.remove(listener)

    def _stamp(self, changed: set[str]) -> None:
        for name in sorted(changed):
            self._versions[name] = next(_VERSIONS)

    def _notify(self, changed: set[str]) -> None:
        if not changed:
            return
        for fn in list(self._listeners):
            fn(changed)

    # -- recipes ----------------------------------------------------------------
    def to_recipe(self) -> dict[str, Any]:
        """The applied history as a recipe dict (``{"version": 1, "edits": [...]}``)."""
        return {"version": RECIPE_VERSION, "edits": [e.to_dict() for e in self.applied_edits]}

    def apply_all(self, edits: Iterable[Edit], source: str = "recipe") -> set[str]:
        """Apply ``edits`` in order as one transaction.

        When a step fails, nothing is applied and a :class:`RecipeError`
        naming the step is raised.
        """
        return self.commit(self.prepare(ApplyEdits(tuple(edits), source)))

    def apply_recipe(self, recipe: Mapping[str, Any] | str | os.PathLike[str]) -> set[str]:
        """Apply a recipe (a dict, or the path of a JSON file) as one transaction.

        Raises
        ------
        RecipeError
            When the recipe is malformed or a step does not fit the model;
            nothing is applied then.
        """
        if isinstance(recipe, Mapping):
            edits, source = parse_recipe(recipe), "recipe"
        else:
            from .recipe import load_recipe

            edits, source = load_recipe(recipe), os.fspath(recipe)
        return self.apply_all(edits, source)

    # -- saving -----------------------------------------------------------------
    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Write the current weights to ``path`` in the opened file's format.

        Untouched tensors and everything else in the file are copied as they
        are; the write is atomic. Writing over the opened file requires
        ``overwrite=True``.

        Raises
        ------
        WeightLabError
            When ``path`` is the opened file and ``overwrite`` is False, or the
            format cannot be written.
        """
        if self._saver is None:
            raise WeightLabError("this session has no writer for its format", self.model.path)
        out = Path(path)
        if _same_file(out, self.model.path) and not overwrite:
            raise WeightLabError(
                "refusing to write over the opened file; pass overwrite=True "
                "(or choose another file name)",
                out,
            )
        self._saver(self.model, self.edited_arrays(), out)
        self._saved_pos = self._pos
        return out


def _describe(change: Change) -> str:
    if isinstance(change, ApplyEdit):
        return change.edit.describe()
    if isinstance(change, ApplyEdits):
        return f"{change.source} ({len(change.edits)} steps)"
    if isinstance(change, Goto):
        return f"the move to step {change.position}"
    return f"switching step {change.index + 1} {'on' if change.enabled else 'off'}"


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False
