"""Documents: open (files, folders, held-out sets, recent files), save as, recipes, journal restore, the title.

:class:`DocumentsController` turns a file the user names into a session in the
workspace (:meth:`~weightlab.app.workspace.Workspace.set_session`) and writes
the session out again. It reacts to the workspace (the window's title, the
journal) and never calls another controller: whatever else a new session
means (views reset, evaluation restarted) its subscribers do.

The *document* is the file the window's edits go to. It is the opened file
until the first Save As; after it, the saved copy: the title names it and
*Save* (Ctrl+S) writes it again without asking. The session still reads the
values it has not changed from the opened file and keeps its history (undo
reaches back past the save); the title and the model tree's summary name
the file being written (the summary's tooltip names the opened file too).

Settings written here (:mod:`weightlab.gui.settings`): ``files/last_folder``
on every open and save, the recent list (opened and saved files and
folders), and the held-out set of each model file (``heldout/<key>``),
recorded when a set is chosen and for every file saved, so reopening a saved
copy brings its held-out set back.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QObject

from weightlab.app.workspace import DataChanged, Saved, SessionReplaced, TensorsChanged, Workspace
from weightlab.core.errors import WeightLabError
from weightlab.core.recipe import save_recipe
from weightlab.core.session import EditSession

from ..opener import ModelOpener, OpenRequest, close_session
from ..settings import last_folder, remember_heldout, remembered_heldout, set_last_folder
from .host import WindowHost
from .paths import (
    DATA_FILTER,
    MODEL_FILTER,
    NOTEBOOK_DATA_PREFIX,
    RECIPE_FILTER,
    default_save_path,
    guess_heldout,
    save_filter,
    split_name,
    with_default_extension,
)


class DocumentsController(QObject):
    """Opening, saving and restoring the window's model; keeps the title.

    Parameters
    ----------
    window:
        The main window (its dialogs, status bar, progress widgets and signals).
    workspace:
        Where an opened session lands.
    """

    def __init__(self, window: WindowHost, workspace: Workspace):
        super().__init__(window)
        self.w = window
        self.ws = workspace
        self.opener = ModelOpener(self)
        self._discard_ok_at: int | None = None  # workspace.changes when dropping the session was confirmed
        #: A session the window shows but does not own (``weightlab.show(session)``): never closed here.
        self.borrowed: EditSession | None = None
        #: The file Save writes: None until the session is first saved (then the saved file).
        self.document: Path | None = None
        self.opener.opened.connect(self._on_opened)
        self.opener.failed.connect(self._on_open_failed)
        window.open_progress.cancel.clicked.connect(self.cancel_open)
        window.journal.restored.connect(self._on_journal_restored)
        workspace.subscribe(self._on_replaced, SessionReplaced)
        workspace.subscribe(self._on_data, DataChanged)
        workspace.subscribe(lambda _ev: self.update_title(), SessionReplaced, TensorsChanged, Saved)

    # -- the session shown --------------------------------------------------------------
    def _on_replaced(self, ev: SessionReplaced) -> None:
        if self.opener.cancel() is not None:  # the session given is the latest
            self.w.open_progress.stop()
            self.w.openFinished.emit(False)
        if ev.old is not None and ev.old is not ev.session and ev.old is not self.borrowed:
            ev.old.model.close()
        self.document = None
        self.w.journal.attach(ev.session)

    def _on_data(self, ev: DataChanged) -> None:
        """A held-out set was chosen for the shown model: remember it for the model's file (and its saved copy)."""
        s = self.ws.session
        if s is not None and not s.model.in_memory:
            for path in {s.model.path, self.document or s.model.path}:
                _remember(path, ev.path)

    @property
    def document_path(self) -> Path | None:
        """The file the title names and Save writes: the saved copy after a Save As, else the opened file."""
        s = self.ws.session
        if s is None:
            return None
        return self.document or s.model.path

    def update_title(self) -> None:
        """``<file>* — WeightLab`` (``*``: unsaved edits); ``<file>`` is :attr:`document_path`."""
        s = self.ws.session
        if s is None:
            self.w.setWindowTitle("WeightLab")
            return
        star = "*" if s.is_modified else ""
        self.w.setWindowTitle(f"{self.document_path.name}{star} — WeightLab")

    # -- opening ------------------------------------------------------------------------
    def open_dialog(self) -> None:
        """File › Open…"""
        path = self.w._ask_open_path("Open model", MODEL_FILTER)
        if path:
            self.open_path(path)

    def open_folder_dialog(self) -> None:
        """File › Open folder… (a SavedModel or a checkpoint folder)."""
        path = self.w._ask_folder("Open SavedModel or checkpoint folder")
        if path:
            self.open_path(path)

    def open_data_dialog(self) -> None:
        """File › Open held-out set…"""
        path = self.w._ask_open_path("Open held-out set", DATA_FILTER)
        if path:
            self.open_data(path)

    def open_path(self, path: str | os.PathLike[str], data: str | os.PathLike[str] | None = None) -> bool:
        """Start opening a model (for ``.npz``: take it as the held-out set); see ``MainWindow.open_path``."""
        p = Path(path)
        if p.suffix.lower() == ".npz":
            return self.open_data(p)
        if not self.confirm_discard():
            return False
        self._discard_ok_at = self.ws.changes
        request = self.opener.open(p, Path(data) if data else None, self.w._load_session)
        self.w.open_progress.start(p.name, request.started)
        return True

    @property
    def opening(self) -> bool:
        """True while a file is being opened."""
        return self.opener.pending is not None

    def cancel_open(self) -> None:
        """Stop waiting for the file being opened; the window keeps what it shows."""
        request = self.opener.cancel()
        self.w.open_progress.stop()
        if request is not None:
            self.w.statusBar().showMessage(f"Opening {request.path.name} cancelled", 5000)
            self.w.openFinished.emit(False)

    def _on_opened(self, request: OpenRequest, session: EditSession) -> None:
        self.w.open_progress.stop()
        s = self.ws.session
        if s is not None and s.is_modified and self.ws.changes != self._discard_ok_at and not self.confirm_discard():
            # The user edited the shown model while the file was opening, and keeps those edits.
            close_session(session)
            self.w.statusBar().showMessage(f"{request.path.name} not opened: the edits are kept", 5000)
            self.w.openFinished.emit(False)
            return
        data = request.data or remembered_heldout(request.path) or guess_heldout(request.path)
        self.ws.set_session(session, data)
        if data is not None:
            _remember(request.path, data)
        self.w.recent.add(request.path)
        _set_last_folder(request.path)
        self.fill_recent_menu()
        self.w.statusBar().showMessage(f"Opened {request.path}", 5000)
        self.w.modelOpened.emit(request.path)
        self.w.openFinished.emit(True)

    def _on_open_failed(self, request: OpenRequest, message: str) -> None:
        self.w.open_progress.stop()
        self.w._error("Cannot open model", message)
        self.w.openFailed.emit(message)
        self.w.openFinished.emit(False)

    def _on_journal_restored(self, session: EditSession, candidate) -> None:
        """Show a session restored from a journal after a crash (its edits unsaved); drop that journal."""
        if not self.confirm_discard():
            session.model.close()
            candidate.release()
            return
        path = session.model.path
        self.ws.set_session(session, remembered_heldout(path) or guess_heldout(path))
        if self.w.journal.journal.error is None:
            candidate.discard()  # after set_session: the edits are in this window's journal now
        else:
            candidate.release()  # this window cannot journal them: keep the old journal
        self.w.statusBar().showMessage(
            f"Restored {candidate.edit_count} unsaved edit(s) to {session.model.path}", 8000
        )

    def open_data(self, path: str | os.PathLike[str]) -> bool:
        """Use ``path`` (.npz) as the held-out set (the evaluation restarts)."""
        p = Path(path)
        if not p.is_file():
            self.w._error("Cannot open held-out set", f"{p}: no such file")
            return False
        self.ws.set_data_path(p, force=True)  # remembered for the model by _on_data
        _set_last_folder(p)
        return True

    def fill_recent_menu(self) -> None:
        """File › Open Recent from the recent-files store: files and folders (``name/``), full paths as tooltips."""
        menu = self.w.recent_menu
        menu.clear()
        menu.setToolTipsVisible(True)
        paths = self.w.recent.paths()
        for p in paths:
            act = menu.addAction(f"{p.name}/" if p.is_dir() else p.name)
            act.setToolTip(str(p))
            act.setStatusTip(str(p))
            act.triggered.connect(lambda _c=False, p=p: self.w.open_path(p))
        if not paths:
            menu.addAction("(none)").setEnabled(False)
        else:
            menu.addSeparator()
            menu.addAction("Clear list", lambda: (self.w.recent.clear(), self.fill_recent_menu()))

    # -- saving -------------------------------------------------------------------------
    def save(self) -> bool:
        """File › Save (Ctrl+S); True when the edits are saved.

        The first time (nothing saved since the model was opened) it is
        :meth:`save_as`, proposing ``NAME-edited.EXT``: the opened file is
        never replaced without its own confirmation. Afterwards it writes the
        same file again without asking. With nothing unsaved it writes nothing.
        """
        s = self.ws.session
        if s is None:
            return False
        if self.document is None:
            return self.save_as()
        if not s.is_modified:
            self.w.statusBar().showMessage(f"{self.document.name}: nothing to save", 3000)
            return True
        opened = s.model.path
        overwrite = self.document.exists() and opened.exists() and os.path.samefile(self.document, opened)
        return self._write(self.document, overwrite)

    def save_as(self) -> bool:
        """File › Save As…; True when a file was written."""
        s = self.ws.session
        if s is None:
            return False
        opened = s.model.path
        fmt = s.model.format
        title = "Save edited model as (a new folder)" if fmt == "savedmodel" else "Save edited model as"
        # an in-memory model's path is only its name: propose a .keras file in the working folder
        default = Path.cwd() / f"{opened.name.removesuffix(' (in memory)')}-edited.keras" if s.model.in_memory \
            else default_save_path(opened, last_folder())
        chosen = self.w._ask_save_path(title, default, save_filter(fmt))
        if not chosen:
            return False
        out = with_default_extension(Path(chosen), fmt)
        if out != Path(chosen) and out.exists() and not (opened.exists() and os.path.samefile(out, opened)):
            # The dialog asked about the name as typed, not about this one.
            if not self.w._confirm_replace(out):
                self.w.statusBar().showMessage(f"Not saved: {out.name} is left as it was", 5000)
                return False
        overwrite = False
        if out.exists() and opened.exists() and os.path.samefile(out, opened):
            if not self.w._confirm_overwrite(out):
                self.w.statusBar().showMessage("Not saved: the opened file is left as it was", 5000)
                return False
            overwrite = True
        return self._write(out, overwrite)

    def _write(self, out: Path, overwrite: bool) -> bool:
        """Write the session to ``out``; it becomes the document (title, Save, recent list, held-out set)."""
        s = self.ws.session
        try:
            s.save(out, overwrite=overwrite)
        except WeightLabError as e:
            self.w._error("Cannot save", str(e))
            return False
        except OSError as e:
            self.w._error("Cannot save", f"{out}: {e.strerror or e}")
            return False
        self.w.journal.sync()  # nothing unsaved now: the journal is removed
        self.document = out
        _remember(out, self.ws.data_path)
        _set_last_folder(out)
        self.w.recent.add(out)
        self.fill_recent_menu()
        self.w.statusBar().showMessage(f"Saved {out}", 5000)
        self.ws.saved(out)  # the title follows
        self.w.tree.set_document_path(out)  # and the tree's summary names the same file
        return True

    def export_recipe(self) -> bool:
        """File › Export recipe…; True when written."""
        s = self.ws.session
        if s is None:
            return False
        stem, _ = split_name(s.model.path)
        default = s.model.path.with_name(f"{stem}-recipe.json")
        chosen = self.w._ask_save_path("Export recipe", default, RECIPE_FILTER)
        if not chosen:
            return False
        try:
            save_recipe(s.to_recipe(), chosen)
        except (WeightLabError, OSError) as e:
            self.w._error("Cannot export recipe", str(e))
            return False
        _set_last_folder(chosen)
        self.w.statusBar().showMessage(f"Recipe written to {chosen}", 5000)
        return True

    def apply_recipe_dialog(self) -> None:
        """File › Apply recipe…"""
        if self.ws.session is None:
            return
        path = self.w._ask_open_path("Apply recipe", RECIPE_FILTER)
        if path:
            self.w.apply_recipe(path)

    def confirm_discard(self) -> bool:
        """True when it is fine to drop the current session (saved, discarded, or unmodified)."""
        s = self.ws.session
        if s is None or not s.is_modified:
            return True
        answer = self.w._ask_unsaved()
        if answer == "save":
            return self.save()
        return answer == "discard"

    def close(self) -> None:
        """The window closes (after :meth:`confirm_discard`): nothing keeps running."""
        self.w.journal.close()  # the edits were saved or discarded
        self.opener.cancel()  # a file still opening is closed by its thread
        self.w.open_progress.stop()
        if self.ws.session is not None and self.ws.session is not self.borrowed:
            self.ws.session.model.close()  # TF formats hold a reader process


def _set_last_folder(path: str | os.PathLike[str]) -> None:
    """Record ``files/last_folder``; an unwritable settings file never fails the user's action."""
    try:
        set_last_folder(path)
    except OSError:
        pass


def _remember(model_path: Path, data_path: Path | None) -> None:
    """Remember ``data_path`` as ``model_path``'s held-out set, unless it is a notebook's private arrays."""
    if data_path is not None and Path(data_path).parent.name.startswith(NOTEBOOK_DATA_PREFIX):
        return  # a temporary file of weightlab.show(): gone after the window closes
    try:
        remember_heldout(model_path, data_path)
    except OSError:
        pass
