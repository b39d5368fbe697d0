"""The action registry: every command of the window, its keys, its menu and when it is enabled, without Qt.

An :class:`Action` names a command (``id``), its menu label, where it sits
(``menu`` path and ``section``), its keyboard shortcuts, a tip, an optional
toolbar icon and an enablement predicate over the
:class:`~weightlab.app.workspace.Workspace`. The window builds its menus, its
toolbar and *Help › Keyboard Shortcuts* from one :class:`ActionRegistry`, and
recomputes enablement from the workspace's events.

Shortcuts are portable key texts (``"Ctrl+Shift+O"``, ``"Delete"``) or, where
the platform has a standard binding, ``"std:<StandardKey>"`` (``"std:Undo"``:
Ctrl+Z, and whatever else the platform binds to Undo). The registry refuses a
key bound twice (two actions, or twice in one action); the Qt side refuses
two actions whose standard keys resolve to the same key on this platform (on
Linux, Redo is Ctrl+Y *and* Ctrl+Shift+Z: adding Ctrl+Shift+Z by hand made
Qt report "Ambiguous shortcut overload" and run neither). One action may list
a standard key and the plain keys it stands for (Redo: ``std:Redo``,
``Ctrl+Shift+Z``, ``Ctrl+Y``): the Qt side binds each resolved key once, so
both redo keys work whatever the platform's own binding (under X11 with a
GNOME-like theme, std:Redo is Ctrl+Shift+Z only).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from .workspace import Workspace

__all__ = ["STANDARD_PREFIX", "Action", "ActionRegistry", "ShortcutConflict", "window_actions"]

#: Prefix of a shortcut naming a platform-standard key binding (``QKeySequence.StandardKey``).
STANDARD_PREFIX = "std:"

Predicate = Callable[[Workspace], bool]
Label = Callable[[Workspace], str]


class ShortcutConflict(ValueError):
    """Two actions (or one action twice) bound to the same key, or two actions with one id."""


def normalize_key(key: str) -> str:
    """A key text in one spelling for comparison: ``"ctrl + shift+z"`` -> ``"ctrl+shift+z"``.

    ``"std:Undo"`` is kept as is (its case is the StandardKey name's).
    Modifier order is not normalised: write ``Ctrl+Shift+X`` (Qt's order).

    Raises
    ------
    ValueError
        ``key`` is empty.
    """
    text = key.strip()
    if not text:
        raise ValueError("empty shortcut")
    if text.startswith(STANDARD_PREFIX):
        return text
    return "+".join(part.strip() for part in text.lower().split("+")) if text != "+" else "+"


@dataclass(frozen=True)
class Action:
    """One command of the window.

    Parameters
    ----------
    id:
        Unique id (``"file.open"``); the window binds it to a slot.
    label:
        Menu text with its ``&`` mnemonic.
    menu:
        Menu path, ``"/"``-separated (``"Edit/Operation"``); ``""``: in no menu
        (a key only, or placed by the window itself).
    section:
        Actions of one menu are grouped by section; a separator goes between
        sections, in registration order.
    shortcuts:
        Key texts (see the module doc); the first is the one shown in menus.
    tip:
        Tool and status tip.
    enabled:
        Whether the action can run in a workspace state; None: always.
    dynamic_label:
        The label in a workspace state (``Undo <edit>``); None: ``label``.
    checkable, checked:
        A toggle and its initial state.
    toolbar:
        Shown on the toolbar too.
    icon:
        A ``QStyle.StandardPixmap`` name (``"SP_DialogOpenButton"``) for the toolbar.
    """

    id: str
    label: str
    menu: str = ""
    section: str = ""
    shortcuts: tuple[str, ...] = ()
    tip: str = ""
    enabled: Predicate | None = None
    dynamic_label: Label | None = None
    checkable: bool = False
    checked: bool = False
    toolbar: bool = False
    icon: str | None = None

    @property
    def text(self) -> str:
        """The label without its ``&`` mnemonic marks (``&&`` stays one ``&``)."""
        return self.label.replace("&&", "\0").replace("&", "").replace("\0", "&")

    def is_enabled(self, workspace: Workspace) -> bool:
        """Whether this action can run now."""
        return True if self.enabled is None else bool(self.enabled(workspace))

    def label_in(self, workspace: Workspace) -> str:
        """The menu text in this workspace state."""
        return self.label if self.dynamic_label is None else self.dynamic_label(workspace)


class ActionRegistry:
    """The window's actions by id, in registration order; every key bound once.

    Example
    -------
    >>> reg = ActionRegistry([Action("a", "&A", shortcuts=("Ctrl+A",))])
    >>> reg.add(Action("b", "&B", shortcuts=("ctrl+a",)))
    Traceback (most recent call last):
    ...
    weightlab.app.actions.ShortcutConflict: shortcut ctrl+a of 'b' is already bound to 'a'
    """

    def __init__(self, actions: Iterable[Action] = ()):
        self._actions: dict[str, Action] = {}
        self._keys: dict[str, str] = {}
        for action in actions:
            self.add(action)

    def add(self, action: Action) -> Action:
        """Register ``action``.

        Raises
        ------
        ShortcutConflict
            Its id is taken, or one of its keys is bound already (to another
            action, or twice to this one).
        """
        if action.id in self._actions:
            raise ShortcutConflict(f"action id {action.id!r} is registered twice")
        keys = [normalize_key(k) for k in action.shortcuts]
        seen: set[str] = set()
        for key in keys:
            owner = self._keys.get(key) or (action.id if key in seen else None)
            if owner is not None:
                raise ShortcutConflict(f"shortcut {key} of {action.id!r} is already bound to {owner!r}")
            seen.add(key)
        self._actions[action.id] = action
        for key in keys:
            self._keys[key] = action.id
        return action

    def __getitem__(self, action_id: str) -> Action:
        return self._actions[action_id]

    def __contains__(self, action_id: object) -> bool:
        return action_id in self._actions

    def __iter__(self) -> Iterator[Action]:
        return iter(self._actions.values())

    def __len__(self) -> int:
        return len(self._actions)

    def in_menu(self, menu: str) -> list[Action]:
        """The actions placed directly in ``menu`` (a path), in order."""
        return [a for a in self._actions.values() if a.menu == menu]

    def menus(self) -> list[str]:
        """Every menu path used, parents before children, in first-use order."""
        out: list[str] = []
        for action in self._actions.values():
            if not action.menu:
                continue
            parts = action.menu.split("/")
            for i in range(1, len(parts) + 1):
                path = "/".join(parts[:i])
                if path not in out:
                    out.append(path)
        return out

    def toolbar(self) -> list[Action]:
        """The actions shown on the toolbar, in order."""
        return [a for a in self._actions.values() if a.toolbar]

    def shortcut_list(self) -> list[tuple[str, str, tuple[str, ...]]]:
        """``(menu, text, shortcuts)`` of every action that has a key, in order (Help › Keyboard Shortcuts)."""
        return [(a.menu, a.text, a.shortcuts) for a in self._actions.values() if a.shortcuts]

    def enablement(self, workspace: Workspace) -> dict[str, bool]:
        """Every action's enabled state in ``workspace``."""
        return {a.id: a.is_enabled(workspace) for a in self._actions.values()}


def _can_undo(ws: Workspace) -> bool:
    return ws.idle and ws.session is not None and ws.session.can_undo


def _can_redo(ws: Workspace) -> bool:
    return ws.idle and ws.session is not None and ws.session.can_redo


def _undo_label(ws: Workspace) -> str:
    s = ws.session
    if s is not None and s.can_undo:
        return f"&Undo {s.steps[s.position - 1].edit.describe()}"
    return "&Undo"


def _redo_label(ws: Workspace) -> str:
    s = ws.session
    if s is not None and s.can_redo:
        return f"&Redo {s.steps[s.position].edit.describe()}"
    return "&Redo"


def _has(ws: Workspace) -> bool:
    return ws.has_session


def _idle(ws: Workspace) -> bool:
    return ws.idle


def window_actions() -> ActionRegistry:
    """The main window's fixed actions (the Edit › Operation entries are added by the window from its op list).

    Ids: ``file.*``, ``edit.*``, ``target.*``, ``view.*``, ``eval.*``, ``analysis.*``, ``help.*``.
    """
    return ActionRegistry(
        [
            Action("file.open", "&Open…", "File", "open", ("std:Open",), "Open a Keras model file",
                   toolbar=True, icon="SP_DialogOpenButton"),
            Action("file.open_folder", "Open &folder…", "File", "open", ("Ctrl+Shift+O",),
                   "Open a SavedModel folder or a checkpoint folder", icon="SP_DirOpenIcon"),
            Action("file.open_data", "Open &held-out set…", "File", "open", (), "Open a held-out .npz (x, y)",
                   enabled=_has),
            Action("file.save", "&Save", "File", "save", ("std:Save",),
                   "Write the edited model (the first time: to a new file, proposing NAME-edited)",
                   enabled=_idle, toolbar=True, icon="SP_DialogSaveButton"),
            Action("file.save_as", "Save &As…", "File", "save", ("std:SaveAs",), "Write the edited model to a new file",
                   enabled=_idle),
            Action("file.export_recipe", "&Export recipe…", "File", "save", (),
                   "Save the applied edits as a JSON recipe", enabled=_idle),
            Action("file.apply_recipe", "Apply &recipe…", "File", "save", (), "Apply the edits of a JSON recipe",
                   enabled=_idle),
            Action("file.compare", "&Compare with…", "File", "compare", ("Ctrl+Shift+C",),
                   "Per-tensor change from this file to another of the same architecture", enabled=_has),
            Action("file.export_tensor", "Export &tensor…", "File", "compare", ("Ctrl+E",),
                   "Write the shown tensor as .npy or .csv", enabled=_idle),
            Action("file.quit", "&Quit", "File", "quit", ("Ctrl+Q",), "Close the window"),
            Action("edit.undo", "&Undo", "Edit", "history", ("std:Undo",), "Undo the last step", enabled=_can_undo,
                   dynamic_label=_undo_label, toolbar=True, icon="SP_ArrowBack"),
            # std:Redo is Ctrl+Y on Windows, Ctrl+Shift+Z under GNOME-like X11 themes, both elsewhere:
            # both keys are listed, and the Qt side binds each resolved key once (never ambiguous).
            Action("edit.redo", "&Redo", "Edit", "history", ("std:Redo", "Ctrl+Shift+Z", "Ctrl+Y"),
                   "Redo the next step", enabled=_can_redo,
                   dynamic_label=_redo_label, toolbar=True, icon="SP_ArrowForward"),
            Action("edit.revert", "Revert &tensor", "Edit", "revert", (), "Restore the shown tensor's stored values",
                   enabled=lambda ws: ws.idle and ws.current is not None and ws.edited([ws.current])),
            Action("edit.revert_all", "Revert &all", "Edit", "revert", (), "Restore every tensor's stored values",
                   enabled=lambda ws: ws.idle and ws.edited()),
            Action("edit.apply_op", "&Apply operation", "Edit", "apply", ("Ctrl+Return", "Ctrl+Enter"),
                   "Apply the operation chosen in the edit panel to its target", enabled=_idle),
            Action("edit.clip_range", "&Clip to brushed range", "Edit", "apply", ("Ctrl+K",),
                   "np.clip(w, lo, hi) with the range brushed on the histogram", enabled=_idle),
            Action("edit.zero_neurons", "&Zero neurons", "Edit", "apply", ("Delete",),
                   "Ablate the selected neurons: kernel[..., j] = 0, bias[j] = 0",
                   enabled=lambda ws: ws.idle and ws.selected_neurons > 0),
            Action("edit.clear_selection", "Clear neuron selection", "Edit", "apply", ("Esc",),
                   "Select no neuron"),
            Action("target.tree", "Target the &tree selection", "Edit", "target", ("Ctrl+T",),
                   "Value edits act on the tensors/layers selected in the tree"),
            Action("target.glob", "Target a &glob…", "Edit", "target", ("Ctrl+G",),
                   "Type a pattern over layer/weight names, e.g. */kernel"),
            Action("target.model", "Target the whole &model", "Edit", "target", ("Ctrl+Shift+A",),
                   "Value edits act on every weight of the model"),
            Action("view.diff", "&Diff view", "View", "views", ("Ctrl+D",),
                   "Show how the shown tensor changed (edited − original)", checkable=True),
            Action("view.mask", "Show pruned &mask", "View", "views", ("Ctrl+M",),
                   "Darken heatmap entries that are zero now and were non-zero in the file",
                   checkable=True, checked=True),
            Action("view.optimizer", "Show &optimizer state", "View", "views", (),
                   "Show the optimizer's slots of a checkpoint in the tree", checkable=True),
            Action("view.find", "&Find in tree…", "View", "tree", ("std:Find",),
                   "Filter the model tree by name (glob such as */kernel, or a substring); Enter jumps",
                   enabled=_has, toolbar=True, icon="SP_FileDialogContentsView"),
            Action("view.count_all", "&Count every tensor's sparsity", "View", "tree", (),
                   "Count the zeros of every tensor in the background (the tree shows each as it is counted)",
                   enabled=_has),
            Action("view.theme.system", "&System", "View/Theme", "theme", (),
                   "Light or dark as the desktop's colour scheme says", checkable=True, checked=True),
            Action("view.theme.light", "&Light", "View/Theme", "theme", (), "Always light", checkable=True),
            Action("view.theme.dark", "&Dark", "View/Theme", "theme", (), "Always dark", checkable=True),
            Action("view.presentation", "&Presentation mode", "View", "layout", ("Ctrl+Shift+F5",),
                   "High contrast for a projector: larger fonts, thicker lines", checkable=True),
            Action("view.reset_layout", "&Reset layout", "View", "layout", (),
                   "Put every panel back in its place and size, shown and docked"),
            Action("eval.restart", "&Re-evaluate", "Evaluation", "eval", ("std:Refresh",),
                   "Rebuild the model in the worker and evaluate again", enabled=_has,
                   toolbar=True, icon="SP_BrowserReload"),
            Action("eval.trust", "&Trust model code (unsafe)…", "Evaluation", "eval", (),
                   "Let the evaluation worker run custom/Lambda layers of this file", checkable=True),
            Action("analysis.sweep", "&Sensitivity sweep…", "Analysis", "analysis", ("Ctrl+Shift+W",),
                   "Show the Sweeps tab: accuracy vs an edit's strength per target", enabled=_has,
                   toolbar=True, icon="SP_FileDialogDetailedView"),
            Action("analysis.rank", "&Rank neurons of layer", "Analysis", "rank", (),
                   "Ablate each output neuron of the shown layer alone and sort by the accuracy it costs "
                   "(the Ranking tab)", enabled=_has),
            Action("training.start", "&Fine-tune…", "Analysis", "train", ("Ctrl+Shift+T",),
                   "Show the Training tab: fine-tune the edited model with pruned weights kept at zero, "
                   "prune and retrain, gradual pruning", enabled=_has, toolbar=True, icon="SP_MediaPlay"),
            Action("help.shortcuts", "&Keyboard Shortcuts", "Help", "help", ("std:HelpContents",),
                   "Every keyboard shortcut of the window"),
            Action("help.guide", "&User Guide", "Help", "help", (),
                   "Open WeightLab's guide (the local docs when present, else online)"),
            Action("help.about", "&About WeightLab", "Help", "about", (),
                   "WeightLab's version and the versions of the libraries it runs on"),
        ]
    )
