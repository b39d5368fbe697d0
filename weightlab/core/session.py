"""An edit session over an opened model: current weights, history, undo/redo.

Arrays are copy-on-write: the session keeps the original values read from the
file (read lazily, cached, read-only) and, for each edited tensor, its current
array. An edit computes new arrays and never mutates old ones, so each history
step stores references to the arrays it replaced (no whole-model copies) and
undo/redo just swap references.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .edits import Edit
from .errors import RecipeError, WeightLabError
from .model import ModelFile
from .recipe import RECIPE_VERSION, parse_recipe

#: Writes ``model`` with the given changed tensors to a new path (atomically).
SaveFunction = Callable[[ModelFile, Mapping[str, np.ndarray], Path], None]
#: Called with the set of canonical names whose values changed.
Listener = Callable[[set[str]], None]


@dataclass(frozen=True)
class Step:
    """One recorded edit: the edit, whether it is switched on, and the arrays it
    replaced and produced (both empty while it is switched off)."""

    edit: Edit
    before: Mapping[str, np.ndarray]
    after: Mapping[str, np.ndarray]
    enabled: bool = True


def _freeze(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


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
    """

    def __init__(self, model: ModelFile, saver: SaveFunction | None = None):
        self.model = model
        self._saver = saver
        self._original: dict[str, np.ndarray] = {}
        self._current: dict[str, np.ndarray] = {}
        self._steps: list[Step] = []
        self._pos = 0
        self._saved_pos = 0
        self._listeners: list[Listener] = []

    # -- values ---------------------------------------------------------------
    def original(self, name: str, *, cache: bool = True) -> np.ndarray:
        """Values of tensor ``name`` as stored in the file (read-only array).

        With ``cache=False`` a tensor not read before is read from the file
        and not kept (for one-off passes over a large model, e.g. counting
        zeros, that must not hold the whole model in memory).
        """
        arr = self._original.get(name)
        if arr is None:
            arr = _freeze(self.model.read(name))
            if cache:
                self._original[name] = arr
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

    @property
    def edited_names(self) -> list[str]:
        """Canonical names of tensors whose current values differ from the file, in model order."""
        return [n for n in self.model.tensors if n in self._current]

    def edited_arrays(self) -> dict[str, np.ndarray]:
        """``{name: current array}`` for every edited tensor (what a save writes)."""
        return {n: self._current[n] for n in self.edited_names}

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
    def applied_edits(self) -> list[Edit]:
        """Edits currently applied and switched on, oldest first (what a recipe holds)."""
        return [s.edit for s in self._steps[: self._pos] if s.enabled]

    def set_step_enabled(self, index: int, enabled: bool) -> set[str]:
        """Switch step ``index`` off or on; the weights are recomputed by replay.

        Every step is replayed from the stored values with the new on/off
        state, so the result equals a history that never had (or always had)
        that step. Returns the names whose current values changed.

        Raises
        ------
        IndexError
            When there is no step ``index``.
        """
        if not 0 <= index < len(self._steps):
            raise IndexError(f"step index must be in [0, {len(self._steps)}); got {index}")
        if self._steps[index].enabled == enabled:
            return set()
        old = {n: self.array(n) for n in self._current}
        flags = [s.enabled for s in self._steps]
        flags[index] = enabled
        pos = self._pos
        saved = self._saved_pos
        edits = [s.edit for s in self._steps]
        # Rewind to the stored values, then replay every step with its flag.
        while self._pos > 0:
            self._undo_quiet()
        replayed: list[Step] = []
        for edit, on in zip(edits, flags):
            if on:
                new = edit.apply(self.model, self)
                before = {n: self.array(n) for n in new}
                after = {n: _freeze(a) if a.flags.writeable else a for n, a in new.items()}
                self._set(after, notify=False)
                replayed.append(Step(edit, before, after, True))
            else:
                replayed.append(Step(edit, {}, {}, False))
        self._steps, self._pos = replayed, len(replayed)
        while self._pos > pos:
            self._undo_quiet()
        self._saved_pos = -1 if saved == pos else saved
        changed = {n for n in set(old) | set(self._current) if self.array(n) is not old.get(n, self._original.get(n))}
        if changed:
            self._notify(changed)
        return changed

    @property
    def can_undo(self) -> bool:
        return self._pos > 0

    @property
    def can_redo(self) -> bool:
        return self._pos < len(self._steps)

    @property
    def is_modified(self) -> bool:
        """True when the applied history differs from the last save (or open)."""
        return self._pos != self._saved_pos

    def apply(self, edit: Edit) -> set[str]:
        """Apply ``edit``, record it, drop any redo tail; return the changed names.

        Raises
        ------
        RecipeError
            When the edit does not fit the model (unknown target, bad neuron).
        """
        new = edit.apply(self.model, self)
        before = {n: self.array(n) for n in new}
        after = {n: _freeze(a) if a.flags.writeable else a for n, a in new.items()}
        del self._steps[self._pos :]
        if self._saved_pos > self._pos:
            self._saved_pos = -1  # the saved state is no longer reachable
        self._steps.append(Step(edit, before, after))
        self._pos += 1
        self._set(after)
        return set(after)

    def undo(self) -> set[str]:
        """Undo the last applied step; return the changed names (empty if none)."""
        if not self.can_undo:
            return set()
        self._pos -= 1
        step = self._steps[self._pos]
        self._set(step.before)
        return set(step.before)

    def redo(self) -> set[str]:
        """Re-apply the next undone step; return the changed names (empty if none)."""
        if not self.can_redo:
            return set()
        step = self._steps[self._pos]
        self._pos += 1
        self._set(step.after)
        return set(step.after)

    def goto(self, position: int) -> set[str]:
        """Undo or redo until ``position`` steps are applied; return the changed names."""
        if not 0 <= position <= len(self._steps):
            raise IndexError(f"position must be in [0, {len(self._steps)}]; got {position}")
        changed: set[str] = set()
        while self._pos > position:
            changed |= self._undo_quiet()
        while self._pos < position:
            changed |= self._redo_quiet()
        if changed:
            self._notify(changed)
        return changed

    def _undo_quiet(self) -> set[str]:
        self._pos -= 1
        step = self._steps[self._pos]
        self._set(step.before, notify=False)
        return set(step.before)

    def _redo_quiet(self) -> set[str]:
        step = self._steps[self._pos]
        self._pos += 1
        self._set(step.after, notify=False)
        return set(step.after)

    def _set(self, arrays: Mapping[str, np.ndarray], notify: bool = True) -> None:
        for name, arr in arrays.items():
            orig = self._original.get(name)
            if arr is orig:
                self._current.pop(name, None)
            else:
                self._current[name] = arr
        if notify and arrays:
            self._notify(set(arrays))

    # -- listeners --------------------------------------------------------------
    def subscribe(self, listener: Listener) -> None:
        """Call ``listener(changed_names)`` after every apply/undo/redo/goto."""
        self._listeners.append(listener)

    def unsubscribe(self, listener: Listener) -> None:
        """Stop calling ``listener``."""
        self._listeners.remove(listener)

    def _notify(self, changed: set[str]) -> None:
        for fn in list(self._listeners):
            fn(changed)

    # -- recipes ----------------------------------------------------------------
    def to_recipe(self) -> dict[str, Any]:
        """The applied history as a recipe dict (``{"version": 1, "edits": [...]}``)."""
        return {"version": RECIPE_VERSION, "edits": [e.to_dict() for e in self.applied_edits]}

    def apply_all(self, edits: Iterable[Edit], source: str = "recipe") -> set[str]:
        """Apply ``edits`` in order as one transaction.

        When a step fails, every step applied by this call is undone and
        dropped, and a :class:`RecipeError` naming the step is raised.
        """
        start = self._pos
        changed: set[str] = set()
        listeners, self._listeners = self._listeners, []
        try:
            for i, edit in enumerate(edits, 1):
                try:
                    changed |= self.apply(edit)
                except WeightLabError as e:
                    raise RecipeError(f"{source}, step {i} ({edit.op} {edit.target!r}): {e.message}") from None
        except BaseException:
            while self._pos > start:
                self._undo_quiet()
            del self._steps[start:]
            raise
        finally:
            self._listeners = listeners
        if changed:
            self._notify(changed)
        return changed

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


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False
