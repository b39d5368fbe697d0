"""Edit journal: a session's unsaved history on disk, restorable after a crash or kill.

While a session has unsaved edits, :class:`SessionJournal` keeps an
append-only JSON-lines file in the user's state folder
(``platformdirs.user_state_dir("weightlab")/journals``, or
``$WEIGHTLAB_STATE_DIR/journals``). Every change of the history is written to
the file (``os.write``) before the call that made it returns, so a crash or a
``SIGKILL`` of the process loses nothing that was on screen; a background
thread then flushes it to the disk (``fsync``, a few ms on a virtual disk),
so a power cut loses at most those milliseconds and the window never waits
for the disk. The file is removed when the session has nothing unsaved (after
a save, after undoing back to the saved state, on discard and on a normal
close).

File format (one JSON object per line)::

    {"weightlab_journal": 1, "path": "/m/model.keras", "format": "keras",
     "pid": 4242, "created": 1764000000.0,
     "files": [["model.keras", 506065, 1763990000000000000]], "sha256": null}
    {"t": "state", "edits": [{...recipe step...}], "enabled": [true], "position": 1}
    {"t": "apply", "edit": {"op": "clip", "target": "dense/kernel", "min": -0.1, "max": 0.1}}
    {"t": "goto", "position": 0}                       # undo, redo, a click in the history
    {"t": "toggle", "index": 0, "enabled": false}      # a history step switched off/on
    {"t": "hash", "sha256": "9f86d0..."}               # the opened file's content hash, once known

The header names the opened file, its format and its identity as it was
opened: each content file's size and modification time (one ``stat`` each,
so opening and the first edit never wait for a read of a multi-GB file) and
the SHA-256 of the content, computed in a background thread from the first
edit on and appended as a ``hash`` record when done. A restore checks the
sizes, then the SHA-256 when it was recorded (or, for a kill within the
seconds the hash takes, the modification times) and refuses to replay when
the file changed. The edits' values are a function of the history's
structure alone (which edits, which are switched on, how many are applied;
see :meth:`~weightlab.core.session.EditSession.set_step_enabled`), so the
records reduce to that structure and the restore replays it from the file:
the arrays are the same bits as before the kill.

Each window session holds an exclusive lock (``flock``) on a ``.lock`` file
beside its journal; the kernel drops it when the process dies, however it
dies. Journals whose lock can be taken are the candidates for a restore
(:func:`find_stale`). A journal is untrusted input: it is read with size and
step limits, every edit goes through the recipe parser, and a damaged line
(a write cut short by the kill) ends the replay there: everything before it
is restored, nothing after it is trusted.

A ``trained`` step (:class:`~weightlab.core.trained.Trained`) holds arrays
no replay can recompute: they are written beside the journal, once per step,
as ``<journal stem>.<sha256[:12]>.npz`` (atomically, in a background
thread: the change's caller does not wait for 100 MiB to reach the disk;
:meth:`SessionJournal.flush` does), and removed with the journal. A restore reads them as
untrusted input and checks them by hash; a missing or different file ends
the replay before that step, as damage does.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .edits import Edit, edit_from_dict
from .errors import RecipeError, WeightLabError
from .trained import Trained, read_arrays, sidecar_name, trained_from_dict, write_arrays

if TYPE_CHECKING:
    from .session import EditSession

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

JOURNAL_VERSION = 1
#: Journals larger than this are read up to here only (the rest counts as damage).
MAX_JOURNAL_BYTES = 64 * 1024 * 1024
#: Most history steps a journal may describe.
MAX_JOURNAL_STEPS = 100_000
#: Most content files hashed for one model (a SavedModel folder's files).
MAX_MODEL_FILES = 10_000
#: A journal is rewritten as one ``state`` record when it has more records than
#: ``2 * steps + COMPACT_SLACK`` (many undo/redo/toggle records).
COMPACT_SLACK = 256
_CHUNK = 1 << 20
_PREFIX = "journal-"
_SUFFIX = ".jsonl"
_counter = itertools.count(1)
#: Journal files are the user's own: never follow a link planted in their place.
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class JournalError(WeightLabError):
    """A journal cannot be restored: the file changed, or the journal is unusable."""


def state_dir() -> Path:
    """WeightLab's state folder (not created here).

    ``$WEIGHTLAB_STATE_DIR`` when set (tests point it at a temporary folder),
    else ``platformdirs.user_state_dir("weightlab")``.
    """
    override = os.environ.get("WEIGHTLAB_STATE_DIR")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_state_dir("weightlab"))


def journal_dir() -> Path:
    """The folder holding edit journals: ``state_dir() / "journals"``."""
    return state_dir() / "journals"


# -- the opened file's identity ---------------------------------------------------------


def content_files(path: str | os.PathLike[str]) -> list[tuple[str, Path]]:
    """The regular files whose bytes make up the model at ``path``, as ``(relative name, path)``.

    A folder (SavedModel, checkpoint folder): every regular file under it,
    links not followed and not included. A checkpoint's ``.index``: it and its
    ``.data-*`` shards. Any other file: itself.

    Raises
    ------
    JournalError
        When ``path`` is missing, neither a regular file nor a folder, or a
        folder of more than :data:`MAX_MODEL_FILES` files.
    """
    p = Path(path)
    try:
        st = os.stat(p)
    except OSError as e:
        raise JournalError(f"cannot read: {e.strerror or e}", p) from None
    found: list[tuple[str, Path]] = []
    if stat.S_ISDIR(st.st_mode):
        for root, dirs, files in os.walk(p, followlinks=False):
            dirs.sort()
            for name in sorted(files):
                full = Path(root, name)
                if _is_regular(full):
                    found.append((full.relative_to(p).as_posix(), full))
                    if len(found) > MAX_MODEL_FILES:
                        raise JournalError(f"more than {MAX_MODEL_FILES} files in the folder", p)
        return found
    if not stat.S_ISREG(st.st_mode):
        raise JournalError("not a regular file or folder", p)
    found.append((p.name, p))
    if p.name.endswith(".index"):
        prefix = p.name[: -len(".index")]
        shards = sorted(q for q in p.parent.glob(f"{_glob_escape(prefix)}.data-*") if _is_regular(q))
        found.extend((q.name, q) for q in shards)
    return found


def _glob_escape(s: str) -> str:
    import glob

    return glob.escape(s)


def _is_regular(p: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(p).st_mode)
    except OSError:
        return False


def file_identity(path: str | os.PathLike[str]) -> list[list[Any]]:
    """``[[relative name, size, mtime_ns], ...]`` of the model's content files (one ``stat`` each).

    Raises
    ------
    JournalError
        As :func:`content_files`, or when a file cannot be read.
    """
    out: list[list[Any]] = []
    for rel, full in content_files(path):
        try:
            st = os.stat(full)
        except OSError as e:
            raise JournalError(f"cannot read: {e.strerror or e}", full) from None
        out.append([rel, st.st_size, st.st_mtime_ns])
    return out


def content_hash(path: str | os.PathLike[str], stop: threading.Event | None = None) -> str | None:
    """SHA-256 over the model's content files (names, sizes and bytes), hex; None when stopped.

    Reads in 1 MiB chunks and checks ``stop`` between chunks, so a thread
    running it can be ended at once.

    Raises
    ------
    JournalError
        As :func:`content_files`, or when a file cannot be read.
    """
    h = hashlib.sha256()
    for rel, full in content_files(path):
        try:
            with open(full, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                h.update(rel.encode("utf-8", "surrogateescape") + b"\0" + size.to_bytes(8, "little"))
                while chunk := f.read(_CHUNK):
                    if stop is not None and stop.is_set():
                        return None
                    h.update(chunk)
        except OSError as e:
            raise JournalError(f"cannot read: {e.strerror or e}", full) from None
    return h.hexdigest()


# -- history structure -------------------------------------------------------------------


class _Damage(Exception):
    """A journal record that cannot be trusted (ends the replay there)."""


@dataclass
class History:
    """The structure of a session's history: its edits, which are on, how many are applied.

    The session's arrays are a function of this structure and the opened
    file, which is what makes a journal replayable bit for bit.
    """

    edits: list[Edit] = field(default_factory=list)
    enabled: list[bool] = field(default_factory=list)
    position: int = 0

    @classmethod
    def of(cls, session: EditSession) -> History:
        """The structure of ``session``'s history now."""
        steps = session.steps
        return cls([s.edit for s in steps], [bool(s.enabled) for s in steps], session.position)

    @property
    def applied_count(self) -> int:
        """Number of applied steps that are switched on (the edits a restore brings back)."""
        return sum(self.enabled[: self.position])

    def copy(self) -> History:
        return History(list(self.edits), list(self.enabled), self.position)

    # -- records ------------------------------------------------------------------------
    def replay_record(self, rec: Any, where: str) -> str | None:
        """Apply one journal record to this structure; returns a ``hash`` record's digest.

        Raises
        ------
        _Damage
            When the record is malformed or does not fit the history.
        """
        if not isinstance(rec, dict):
            raise _Damage(f"{where}: not an object")
        kind = rec.get("t")
        if kind == "apply":
            edit = _parse_edit(rec.get("edit"), where)
            if self.position + 1 > MAX_JOURNAL_STEPS:
                raise _Damage(f"{where}: more than {MAX_JOURNAL_STEPS} steps")
            del self.edits[self.position :], self.enabled[self.position :]
            self.edits.append(edit)
            self.enabled.append(True)
            self.position += 1
        elif kind == "goto":
            self.position = _index(rec.get("position"), len(self.edits) + 1, where)
        elif kind == "toggle":
            i = _index(rec.get("index"), len(self.edits), where)
            on = rec.get("enabled")
            if not isinstance(on, bool):
                raise _Damage(f"{where}: 'enabled' must be true or false")
            self.enabled[i] = on
        elif kind == "state":
            steps, flags = rec.get("edits"), rec.get("enabled")
            if not isinstance(steps, list) or not isinstance(flags, list) or len(steps) != len(flags):
                raise _Damage(f"{where}: 'edits' and 'enabled' must be lists of the same length")
            if len(steps) > MAX_JOURNAL_STEPS:
                raise _Damage(f"{where}: more than {MAX_JOURNAL_STEPS} steps")
            if not all(isinstance(f, bool) for f in flags):
                raise _Damage(f"{where}: 'enabled' must hold true or false")
            edits = [_parse_edit(d, f"{where}, step {i}") for i, d in enumerate(steps, 1)]
            self.edits, self.enabled = edits, list(flags)
            self.position = _index(rec.get("position"), len(edits) + 1, where)
        elif kind == "hash":
            digest = rec.get("sha256")
            if not (isinstance(digest, str) and len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)):
                raise _Damage(f"{where}: 'sha256' must be 64 hex digits")
            return digest
        else:
            raise _Damage(f"{where}: unknown record type {str(kind)[:40]!r}")
        return None


def _parse_edit(d: Any, where: str) -> Edit:
    try:
        if isinstance(d, dict) and d.get("op") == Trained.op:
            return trained_from_dict(d, where)  # its arrays come from beside the journal (_load_arrays)
        return edit_from_dict(d, where)
    except RecipeError as e:
        raise _Damage(e.message) from None


def _index(v: Any, limit: int, where: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < limit:
        raise _Damage(f"{where}: index must be an integer in [0, {limit}); got {str(v)[:40]}")
    return v


def _diff(old: History, new: History) -> list[dict[str, Any]] | None:
    """Records that turn ``old`` into ``new``; None when a ``state`` record is simpler.

    Edits are compared by identity: the session keeps the same edit objects
    across undo, redo and toggles, and an apply adds new ones.
    """
    n = min(len(old.edits), len(new.edits))
    k = 0
    while k < n and old.edits[k] is new.edits[k]:
        k += 1
    recs: list[dict[str, Any]] = []
    if k == len(old.edits) == len(new.edits):
        recs += [
            {"t": "toggle", "index": i, "enabled": b}
            for i, (a, b) in enumerate(zip(old.enabled, new.enabled))
            if a != b
        ]
        position = old.position
    else:
        # ``new`` is ``old`` up to step k, then new edits applied at position k
        # (an apply drops the undone tail).
        tail = new.edits[k:]
        if not tail or old.enabled[:k] != new.enabled[:k] or not all(new.enabled[k:]):
            return None
        if old.position != k:
            recs.append({"t": "goto", "position": k})
        recs += [{"t": "apply", "edit": e.to_dict()} for e in tail]
        position = len(new.edits)
    if position != new.position:
        recs.append({"t": "goto", "position": new.position})
    return recs


def _state_record(h: History) -> dict[str, Any]:
    return {"t": "state", "edits": [e.to_dict() for e in h.edits], "enabled": list(h.enabled), "position": h.position}


def _dumps(rec: dict[str, Any]) -> bytes:
    return (json.dumps(rec, separators=(",", ":"), allow_nan=False, default=_json_default) + "\n").encode()


def _json_default(v: Any) -> Any:
    item = getattr(v, "item", None)  # NumPy scalars (a brushed range's float32 bounds)
    if callable(item):
        return item()
    raise TypeError(f"cannot write {type(v).__name__} to a journal")


# -- locks -----------------------------------------------------------------------------------


def _try_lock(path: Path) -> int | None:
    """Open (creating) ``path`` and take an exclusive lock without waiting; the fd, or None when held."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | _NOFOLLOW, 0o600)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:  # pragma: no cover - Windows
            import msvcrt

            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError:
        os.close(fd)
        return None
    return fd


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - Windows cannot open folders
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _unlink(p: Path) -> None:
    try:
        p.unlink()
    except FileNotFoundError:
        pass


# -- writing ---------------------------------------------------------------------------------


class SessionJournal:
    """Keeps the journal of one window's session: created on the first unsaved change, removed when saved.

    Parameters
    ----------
    folder:
        Where journals live; :func:`journal_dir` when omitted.

    Attributes
    ----------
    path:
        The journal file while one exists, else None.
    error:
        Why journaling stopped for this session (the state folder cannot be
        written...), else None. Journaling never makes an edit fail.
    """

    def __init__(self, folder: str | os.PathLike[str] | None = None):
        self.folder = Path(folder) if folder is not None else journal_dir()
        self.session: EditSession | None = None
        self.path: Path | None = None
        self.error: str | None = None
        self._stem = f"{_PREFIX}{os.getpid()}-{next(_counter)}"
        self._fd: int | None = None
        self._lock_fd: int | None = None
        self._known = History()
        self._records = 0  # records after the last state record
        self._identity: list[list[Any]] | None = None
        self._sha256: str | None = None
        self._io = threading.Lock()
        self._hasher: threading.Thread | None = None
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None
        self._dirty = threading.Event()  # written, not yet fsynced
        self._closing = threading.Event()
        self._dir_dirty = False  # the journal's name is not yet durable in its folder
        self._arrays: set[Path] = set()  # trained steps' arrays written (or being written) beside the journal
        self._array_writer: threading.Thread | None = None

    # -- life cycle -------------------------------------------------------------------------
    def attach(self, session: EditSession | None) -> None:
        """Journal ``session`` from now on (None: none); the previous session's journal is removed.

        A session that already has unsaved steps (a restored one) gets its
        journal at once.
        """
        self.detach()
        self.session = session
        self.error = None
        if session is None:
            return
        session.subscribe(self._on_change)
        try:
            self._identity = file_identity(session.model.path)
        except WeightLabError as e:
            self.error = str(e)
            return
        self.sync()

    def detach(self) -> None:
        """Stop journaling the current session and remove its journal (it was saved or discarded)."""
        if self.session is not None:
            try:
                self.session.unsubscribe(self._on_change)
            except ValueError:
                pass
        self.session = None
        self._stop_hasher()
        self._identity, self._sha256 = None, None
        self._remove()

    close = detach

    @property
    def hashed(self) -> bool:
        """True when the opened file's content hash is known (and written to the journal, if any)."""
        return self._sha256 is not None

    def wait_hashed(self, timeout: float | None = None) -> bool:
        """Wait for the background content hash; True when it is known."""
        t = self._hasher
        if t is not None:
            t.join(timeout)
        return self.hashed

    # -- recording --------------------------------------------------------------------------
    def _on_change(self, _changed: set[str]) -> None:
        self.sync()

    def sync(self) -> None:
        """Bring the journal up to date with the session's history (cheap when nothing changed).

        Called after every change the session announces; call it as well after
        a save and after switching a step of the undone tail (which changes
        no values and so is not announced).
        """
        s = self.session
        if s is None or self.error is not None or self._identity is None:
            return
        try:
            if not s.is_modified:
                self._remove()
                return
            now = History.of(s)
            if self._fd is None:
                self._create(now)
                self._write_arrays(now)
                return
            self._write_arrays(now)
            recs = _diff(self._known, now)
            if recs is None or self._records + len(recs) > 2 * len(now.edits) + COMPACT_SLACK:
                self._rewrite(now)
            elif recs:
                self._append(b"".join(_dumps(r) for r in recs))
                self._records += len(recs)
            self._known = now.copy()
        except (OSError, TypeError, ValueError) as e:
            self.error = f"edit journal stopped: {e}"

    def _write_arrays(self, now: History) -> None:
        """Write the arrays of trained steps not yet beside the journal, in a background thread.

        The caller (the window's thread) never waits for them (0.2 s for 100 MiB
        with its fsync); a restore before they are written stops before the step.
        """
        pending = []
        for edit in now.edits:
            if isinstance(edit, Trained) and edit.has_arrays:
                target = self.folder / sidecar_name(f"{self._stem}{_SUFFIX}", edit.sha256)
                if target not in self._arrays:
                    self._arrays.add(target)
                    pending.append((target, edit))
        if not pending:
            return
        before = self._array_writer

        def run() -> None:
            if before is not None:
                before.join()
            try:
                for target, edit in pending:
                    write_arrays(target, edit)
            except OSError as e:
                self.error = f"edit journal stopped: {e}"

        t = threading.Thread(target=run, name="weightlab-journal-arrays", daemon=True)
        t.start()
        self._array_writer = t

    def _wait_arrays(self) -> None:
        t = self._array_writer
        if t is not None and t is not threading.current_thread():
            t.join()

    def _header(self) -> dict[str, Any]:
        s = self.session
        assert s is not None
        return {
            "weightlab_journal": JOURNAL_VERSION,
            "path": os.fspath(s.model.path.absolute()),
            "format": s.model.format,
            "pid": os.getpid(),
            "created": time.time(),
            "files": self._identity,
            "sha256": self._sha256,
        }

    def _create(self, now: History) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        # A dead process with this pid (pids are reused) may have left a
        # journal under this name: never write over it.
        while (self.folder / f"{self._stem}{_SUFFIX}").exists() or (self.folder / f"{self._stem}.lock").exists():
            self._stem = f"{_PREFIX}{os.getpid()}-{next(_counter)}"
        lock_path = self.folder / f"{self._stem}.lock"
        self._lock_fd = _try_lock(lock_path)
        if self._lock_fd is None:
            raise OSError(f"{lock_path} is locked by another process")
        self.path = self.folder / f"{self._stem}{_SUFFIX}"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
        with self._io:
            self._fd = fd
            _write_all(fd, _dumps(self._header()) + _dumps(_state_record(now)))
            self._dir_dirty = True
        self._known, self._records = now.copy(), 0
        self._start_flusher()
        self._dirty.set()
        self._start_hasher()

    def _write_new(self, path: Path, now: History) -> None:
        """Write header and state to ``path`` atomically and durably (compaction: rare)."""
        with self._io:
            tmp = path.with_name(path.name + ".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _NOFOLLOW, 0o600)
            try:
                _write_all(fd, _dumps(self._header()) + _dumps(_state_record(now)))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
            _fsync_dir(path.parent)

    def _rewrite(self, now: History) -> None:
        """Compact: the same state as one record, written beside and renamed over the journal."""
        assert self.path is not None and self._fd is not None
        self._write_new(self.path, now)
        with self._io:
            os.close(self._fd)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        self._records = 0

    def _append(self, data: bytes) -> None:
        with self._io:
            if self._fd is None:
                return
            _write_all(self._fd, data)
        self._dirty.set()

    def flush(self) -> None:
        """Make everything written so far durable (``fsync`` of the journal and its folder).

        The background flusher does this after every write; this waits for it,
        and for trained steps' arrays being written.
        """
        self._wait_arrays()
        self._flush_records()

    def _flush_records(self) -> None:
        """:meth:`flush` without waiting for trained steps' arrays (the flusher's part)."""
        with self._io:
            if self._fd is None:
                return
            fd = os.dup(self._fd)  # fsync outside the lock: appends never wait for the disk
            need_dir, self._dir_dirty = self._dir_dirty, False
        try:
            os.fsync(fd)
        except OSError:  # pragma: no cover - the file system cannot sync; nothing better to do
            pass
        finally:
            os.close(fd)
        if need_dir:
            _fsync_dir(self.folder)

    def _start_flusher(self) -> None:
        if self._flusher is not None:
            return
        self._closing = closing = threading.Event()
        dirty = self._dirty

        def run() -> None:
            while True:
                dirty.wait()
                if closing.is_set():
                    return
                dirty.clear()
                self._flush_records()

        self._flusher = threading.Thread(target=run, name="weightlab-journal-flush", daemon=True)
        self._flusher.start()

    def _stop_flusher(self) -> None:
        t, self._flusher = self._flusher, None
        if t is not None:
            self._closing.set()
            self._dirty.set()
            t.join()
            self._dirty.clear()

    def _remove(self) -> None:
        self._stop_flusher()
        self._wait_arrays()
        self._array_writer = None
        with self._io:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            if self.path is not None:
                _unlink(self.path)
                _unlink(self.path.with_name(self.path.name + ".tmp"))
                _fsync_dir(self.path.parent)
                self.path = None
            for side in self._arrays:
                _unlink(side)
            self._arrays.clear()
            if self._lock_fd is not None:
                _unlink(self.folder / f"{self._stem}.lock")
                os.close(self._lock_fd)
                self._lock_fd = None
        self._known, self._records = History(), 0

    # -- content hash -------------------------------------------------------------------------
    def _start_hasher(self) -> None:
        if self._sha256 is not None or self._hasher is not None or self.session is None:
            return
        path, identity = self.session.model.path, self._identity
        self._stop = stop = threading.Event()

        def run() -> None:
            try:
                digest = content_hash(path, stop)
                # Only a hash of the bytes the session opened counts (not of a file
                # replaced meanwhile, e.g. by a save over it).
                if digest is None or file_identity(path) != identity:
                    return
            except WeightLabError:
                return
            with self._io:
                if stop.is_set():
                    return
                self._sha256 = digest
                if self._fd is not None:
                    try:
                        _write_all(self._fd, _dumps({"t": "hash", "sha256": digest}))
                    except OSError:
                        return
            self._dirty.set()

        self._hasher = threading.Thread(target=run, name="weightlab-journal-hash", daemon=True)
        self._hasher.start()

    def _stop_hasher(self) -> None:
        t, self._hasher = self._hasher, None
        if t is not None:
            self._stop.set()
            t.join()


# -- reading and restoring ----------------------------------------------------------------------


@dataclass
class Candidate:
    """A journal left by a session that ended without saving (its process is gone).

    The candidate holds the journal's lock until :meth:`discard` or
    :meth:`release`, so two windows never restore the same journal.

    Attributes
    ----------
    journal:
        The journal file.
    model_path, format:
        The opened file and its format name, as the journal says.
    history:
        The history structure read up to the end or the first damaged record.
    sha256:
        The opened file's content hash, when it was recorded.
    files:
        ``[[name, size, mtime_ns], ...]`` of the opened file's content files.
    damage:
        What made the reading stop early (``"line 7: cut short"``), else None.
    created:
        When the journal was started (seconds since the epoch).
    """

    journal: Path
    model_path: Path
    format: str
    history: History
    sha256: str | None
    files: list[list[Any]]
    damage: str | None
    created: float
    _lock_fd: int | None = field(default=None, repr=False)

    @property
    def edit_count(self) -> int:
        """Number of unsaved edits a restore brings back."""
        return self.history.applied_count

    def describe(self) -> str:
        """The restore question: ``WeightLab closed with N unsaved edits to X. Restore them?``."""
        n = self.edit_count
        text = f"WeightLab closed with {n} unsaved edit{'s' if n != 1 else ''} to {self.model_path}. Restore them?"
        if self.damage:
            text += f"\n\nThe journal is damaged after its last good record ({self.damage}); the edits before it can be restored."
        return text

    def discard(self) -> None:
        """Delete the journal (and its lock)."""
        _unlink(self.journal)
        _unlink(self.journal.with_name(self.journal.name + ".tmp"))
        for side in _sidecars(self.journal):
            _unlink(side)
        _unlink(_lock_path(self.journal))
        self.release()

    def release(self) -> None:
        """Keep the journal for a later start, and let other windows take it."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def check_unchanged(self, stop: threading.Event | None = None) -> None:
        """Check that the opened file is the one the edits were made on.

        Sizes are compared first; then the SHA-256 of the content when the
        journal recorded it, else the modification times.

        Raises
        ------
        JournalError
            When the file is missing or changed; the edits must not be replayed then.
        """
        now = file_identity(self.model_path)
        before = {str(f[0]): (f[1], f[2]) for f in self.files}
        after = {str(f[0]): (f[1], f[2]) for f in now}
        what = None
        if set(before) != set(after):
            what = "its files are not the same ones"
        elif any(before[k][0] != after[k][0] for k in before):
            what = "its size changed"
        elif self.sha256 is not None:
            digest = content_hash(self.model_path, stop)
            if digest is None:
                raise JournalError("restore cancelled", self.model_path)
            if digest != self.sha256:
                what = "its content changed (SHA-256 differs)"
        elif any(before[k][1] != after[k][1] for k in before):
            what = "it was modified (its modification time changed; no content hash had been recorded)"
        if what:
            raise JournalError(
                f"the file changed since the unsaved edits were made: {what}; the edits were not replayed",
                self.model_path,
            )


def _lock_path(journal: Path) -> Path:
    return journal.with_name(journal.name[: -len(_SUFFIX)] + ".lock")


def _sidecars(journal: Path) -> list[Path]:
    """The trained steps' arrays written beside ``journal``."""
    return sorted(journal.parent.glob(f"{_glob_escape(journal.name[: -len(_SUFFIX)])}.*.npz"))


def _load_arrays(history: History, journal: Path) -> str | None:
    """Give trained steps their arrays from beside ``journal``; at the first that cannot, cut the history there.

    Returns what stopped it (as a ``damage`` text), else None.
    """
    for i, edit in enumerate(history.edits):
        if not isinstance(edit, Trained) or edit.has_arrays:
            continue
        try:
            name = sidecar_name(journal, edit.sha256)
            arrays = read_arrays(journal.parent, name, owner=str(journal))
            where = f"{journal}: trained weights {journal.parent / name}"
            history.edits[i] = edit.attach(arrays, source=where, copy=False)
        except RecipeError as e:
            del history.edits[i:], history.enabled[i:]
            history.position = min(history.position, i)
            return f"step {i + 1} ({edit.label}): {e.message}"
    return None


def read_journal(path: str | os.PathLike[str]) -> Candidate:
    """Read a journal file (without taking its lock).

    Reads at most :data:`MAX_JOURNAL_BYTES`; the records are replayed into a
    :class:`History` up to the end or the first record that is cut short,
    not JSON, or does not fit (``damage`` says which).

    Raises
    ------
    JournalError
        When the file cannot be read or its header is not a journal header.
    """
    p = Path(path)
    try:
        # Non-blocking and not through a link: a FIFO or device planted here
        # must not hang the start-up.
        fd = os.open(p, os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        raise JournalError(f"cannot read journal: {e.strerror or e}", p) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise JournalError("not a regular file", p)
        with os.fdopen(fd, "rb") as f:
            fd = -1
            data = f.read(MAX_JOURNAL_BYTES + 1)
    except OSError as e:
        raise JournalError(f"cannot read journal: {e.strerror or e}", p) from None
    finally:
        if fd >= 0:
            os.close(fd)
    damage = None
    if len(data) > MAX_JOURNAL_BYTES:
        data = data[:MAX_JOURNAL_BYTES]
        damage = f"larger than {MAX_JOURNAL_BYTES} bytes"
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" after a complete last line
    header = _loads(lines[0]) if lines else None
    if not isinstance(header, dict) or header.get("weightlab_journal") != JOURNAL_VERSION:
        raise JournalError("not a WeightLab journal (bad or missing header)", p)
    model, fmt, files = header.get("path"), header.get("format"), header.get("files")
    sha = header.get("sha256")
    created = header.get("created")
    if not (
        isinstance(model, str) and model and "\0" not in model and isinstance(fmt, str)
        and isinstance(files, list) and len(files) <= MAX_MODEL_FILES
        and all(
            isinstance(e, list) and len(e) == 3 and isinstance(e[0], str)
            and all(isinstance(x, int) and not isinstance(x, bool) for x in e[1:])
            for e in files
        )
        and (sha is None or (isinstance(sha, str) and len(sha) == 64))
        and isinstance(created, (int, float))
    ):
        raise JournalError("not a WeightLab journal (bad header fields)", p)
    history = History()
    for i, line in enumerate(lines[1:], 2):
        rec = _loads(line)
        if rec is None:
            damage = f"line {i}: not valid JSON"
            break
        try:
            digest = history.replay_record(rec, f"line {i}")
        except _Damage as e:
            damage = str(e)
            break
        if digest is not None:
            sha = digest
    else:
        if tail and damage is None:
            damage = f"line {len(lines) + 1}: cut short"
    damage = _load_arrays(history, p) or damage
    return Candidate(p, Path(model), fmt, history, sha, files, damage, float(created))


def _loads(line: bytes) -> Any:
    try:
        return json.loads(line)
    except (ValueError, RecursionError, UnicodeDecodeError):
        return None


def _pid_of(name: str) -> int | None:
    try:
        return int(name[len(_PREFIX) :].split("-", 1)[0])
    except ValueError:
        return None


def find_stale(folder: str | os.PathLike[str] | None = None) -> list[Candidate]:
    """Journals of sessions that ended without saving, newest first; each holds its lock.

    A journal whose lock another process (or another window of this one)
    holds is alive and skipped. Unreadable journals and journals with
    nothing to restore are removed. Call :meth:`Candidate.discard` or
    :meth:`Candidate.release` on each one returned.
    """
    d = Path(folder) if folder is not None else journal_dir()
    try:
        names = sorted(os.listdir(d))
    except OSError:
        return []
    found: list[Candidate] = []
    for name in names:
        if not (name.startswith(_PREFIX) and name.endswith(_SUFFIX)) or _pid_of(name) is None:
            continue
        p = d / name
        try:
            fd = _try_lock(_lock_path(p))
        except OSError:
            continue
        if fd is None:
            continue  # its window is alive
        try:
            cand = read_journal(p)
        except JournalError:
            cand = None
        if cand is None or cand.edit_count == 0:
            _unlink(p)
            _unlink(p.with_name(p.name + ".tmp"))
            for side in _sidecars(p):
                _unlink(side)
            _unlink(_lock_path(p))
            os.close(fd)
            continue
        cand._lock_fd = fd
        found.append(cand)
    found.sort(key=lambda c: c.created, reverse=True)
    return found


def replay(history: History, session: EditSession) -> None:
    """Rebuild ``history`` in a freshly opened ``session`` (same edits, on/off states and position).

    Raises
    ------
    RecipeError
        When an edit does not fit the model; nothing is applied then.
    """
    session.apply_all(history.edits, source="journal")
    for i, on in enumerate(history.enabled):
        if not on:
            session.set_step_enabled(i, False)
    session.goto(history.position)


def restore(
    candidate: Candidate,
    open_session: Callable[[Path], EditSession],
    stop: threading.Event | None = None,
) -> EditSession:
    """Reopen the candidate's file, check that it is unchanged, and replay its history.

    Slow for large files (the content is hashed, the edits recomputed): run
    it off the window's thread.

    Parameters
    ----------
    open_session:
        Opens a model as a session (:func:`weightlab.open`; the core does
        not import the formats itself).

    Raises
    ------
    JournalError
        When the file changed or is of another format now.
    WeightLabError
        When the file cannot be opened or an edit does not fit it.
    """
    candidate.check_unchanged(stop)
    session = open_session(candidate.model_path)
    try:
        if session.model.format != candidate.format:
            raise JournalError(
                f"the file now opens as {session.model.format!r}, not {candidate.format!r}; "
                "the edits were not replayed",
                candidate.model_path,
            )
        replay(candidate.history, session)
    except BaseException:
        session.model.close()
        raise
    return session


def iter_journals(folder: str | os.PathLike[str] | None = None) -> Iterator[Path]:
    """Every journal file in ``folder`` (alive or not)."""
    d = Path(folder) if folder is not None else journal_dir()
    if d.is_dir():
        yield from sorted(q for q in d.iterdir() if q.name.startswith(_PREFIX) and q.name.endswith(_SUFFIX))
