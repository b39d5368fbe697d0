"""Atomic file and folder writes, with recognisable temporary names.

A save never leaves a half-written file behind and never touches the target
until the new content is complete: the content is written to a temporary file
in the target's folder, flushed and fsynced, then moved over the target with
:func:`os.replace` (atomic on POSIX and Windows for paths on one file system).

Every temporary file or folder WeightLab creates is named
``.{name}.weightlab-tmp-{pid}-{random}{suffix}`` (see :func:`temp_path`): it is
hidden, says which program made it, and carries the writer's process id. The
writer removes it on every error path; when the writer is killed (SIGKILL,
power loss) it stays behind, and the next save or open in the same folder
removes it with :func:`remove_stale_temps` once no process with that id is
alive.

Files are created with mode ``0o666`` and folders with ``0o777``, both reduced
by the process umask, exactly as ``open(path, "w")`` and ``os.mkdir`` do and as
Keras' own saves do: ``0o644`` / ``0o755`` under the usual umask ``022``.
(:func:`tempfile.mkstemp` would give ``0o600`` whatever the umask.)

Names written by older WeightLab versions (``.out.h5.k2j4x9ab.tmp`` from
:func:`tempfile.mkstemp`, ``.weightlab-*.h5``) carry no process id, so nothing
can tell a leftover from a file another program is writing right now, or from
a user's own file of that shape; they are left alone.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "TEMP_MARK",
    "atomic_folder",
    "atomic_path",
    "pid_alive",
    "remove_stale_temps",
    "remove_tree",
    "temp_path",
]

#: The part of every temporary name that marks it as WeightLab's.
TEMP_MARK = ".weightlab-tmp-"

# ``{TEMP_MARK}{pid}-{random}``: the last such group in a name is the writer's.
_TEMP_RE = re.compile(re.escape(TEMP_MARK) + r"(\d{1,10})-([0-9a-f]{8,32})")
#: Suffix of the name :func:`atomic_folder` moves the previous target to while swapping.
_ASIDE = ".old"
_ASIDE_RE = re.compile(
    r"^\.(.+)" + re.escape(TEMP_MARK) + r"\d{1,10}-[0-9a-f]{8,32}" + re.escape(_ASIDE) + "$"
)


def temp_path(
    folder: str | os.PathLike[str],
    name: str,
    *,
    suffix: str = "",
    directory: bool = False,
) -> Path:
    """Create a new, empty temporary file (or folder) in ``folder`` and return its path.

    The entry is named ``.{name}.weightlab-tmp-{pid}-{random}{suffix}``, where
    ``pid`` is this process's id and ``random`` 8 hex digits, and is created
    exclusively (``O_CREAT | O_EXCL``; never through an existing name or link).
    A file gets mode ``0o666`` and a folder ``0o777``, reduced by the umask.

    Parameters
    ----------
    folder : str or os.PathLike
        Existing folder to create the entry in (use the target's folder, so a
        later :func:`os.replace` stays on one file system).
    name : str
        Recognisable part of the name, usually the target's file name.
    suffix : str, optional
        Appended after the random part, e.g. ``".h5"`` for writers that look
        at the extension.
    directory : bool, optional
        Create a folder instead of a file.

    Returns
    -------
    pathlib.Path
        Path of the new entry. The caller owns it and must remove it.

    Raises
    ------
    OSError
        When ``folder`` does not exist or is not writable.
    """
    folder = Path(folder) if str(folder) else Path(".")
    pid = os.getpid()
    for _ in range(100):
        path = folder / f".{name}{TEMP_MARK}{pid}-{secrets.token_hex(4)}{suffix}"
        try:
            if directory:
                os.mkdir(path, 0o777)
            else:
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
                os.close(os.open(path, flags | getattr(os, "O_BINARY", 0), 0o666))
        except FileExistsError:
            continue
        return path
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(folder / f".{name}"))


def temp_owner(name: str) -> int | None:
    """Return the writer's process id encoded in a temporary name, or None."""
    found = _TEMP_RE.findall(name)
    return int(found[-1][0]) if found else None


def pid_alive(pid: int) -> bool:
    """Return whether a process with id ``pid`` exists (conservatively True if unknown)."""
    if pid <= 0:
        return True
    if pid == os.getpid():
        return True
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        return _pid_alive_windows(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except OSError:
        return True
    return True


def _pid_alive_windows(pid: int) -> bool:  # pragma: no cover - Windows only
    # os.kill(pid, 0) would *terminate* the process on Windows.
    if sys.platform != "win32":  # tells type checkers that ctypes.windll exists below
        raise NotImplementedError("Windows only")
    import ctypes

    kernel32 = ctypes.windll.kernel32
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return ctypes.GetLastError() != 87  # ERROR_INVALID_PARAMETER: no such process
    try:
        code = ctypes.c_ulong()
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return True
        return code.value == 259  # STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)


def remove_tree(path: str | os.PathLike[str]) -> None:
    """Remove ``path`` without following any link.

    A symlink (to a file or a folder) is unlinked, never followed; a folder is
    removed with :func:`shutil.rmtree`, which unlinks links inside it instead
    of descending into them. A missing path is not an error.

    Raises
    ------
    OSError
        When something could not be removed.
    """
    path = Path(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def remove_stale_temps(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove WeightLab temporary entries left in ``folder`` by dead processes.

    Looks only at entries directly in ``folder`` whose name contains
    :data:`TEMP_MARK` followed by a process id and a random part (see
    :func:`temp_path`). An entry is removed when no process with that id is
    alive; this process's own entries and those of live processes are kept.
    Links are unlinked, never followed, and folders are removed without
    descending into links. Best effort: an entry that cannot be removed (or
    vanishes meanwhile, e.g. because another process cleans too) is skipped.

    Liveness is judged on this machine: a process id reused by an unrelated
    live process keeps the entry (conservative), and a folder shared over a
    network with another machine writing into it at the same time is not
    supported (that machine's in-progress entries look stale here; its save
    then fails cleanly, its target untouched).

    A previous target that :func:`atomic_folder` had moved aside when its
    process was killed, before the new folder took its place, is renamed
    back to its name instead (the target is missing then), so a kill never
    loses the previous content.

    Parameters
    ----------
    folder : str or os.PathLike
        The folder to clean. A missing or unreadable folder yields ``[]``.

    Returns
    -------
    list of pathlib.Path
        The entries removed.
    """
    folder = Path(folder) if str(folder) else Path(".")
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    removed: list[Path] = []
    for entry in names:
        pid = temp_owner(entry) if TEMP_MARK in entry else None
        if pid is None or pid_alive(pid):
            continue
        path = folder / entry
        aside = _ASIDE_RE.match(entry)
        try:
            if aside and not os.path.lexists(folder / aside.group(1)):
                os.rename(path, folder / aside.group(1))  # killed mid-swap: put the previous target back
                continue
            remove_tree(path)
        except OSError:
            continue
        removed.append(path)
    return removed


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success move it over ``target``.

    The caller writes the complete file to the yielded path (it exists, empty,
    with mode ``0o666`` minus the umask; writers may truncate or replace it).
    When the ``with`` block exits normally the file is fsynced and renamed onto
    ``target``; when it raises, the temporary file is removed and ``target`` is
    left untouched. Stale temporary entries of dead processes in the target's
    folder are removed first (:func:`remove_stale_temps`). A ``target`` that is
    a symlink is replaced by the new file; the link's destination is never
    written.

    Parameters
    ----------
    target : str or os.PathLike
        Final path of the file.
    suffix : str, optional
        Suffix of the temporary name; defaults to ``target``'s own suffix, so
        writers that check the extension accept it.

    Yields
    ------
    pathlib.Path
        The temporary path to write.

    Raises
    ------
    OSError
        When the temporary file cannot be created, synced or renamed.
    """
    target = Path(target)
    folder = target.parent if str(target.parent) else Path(".")
    remove_stale_temps(folder)
    tmp_path = temp_path(folder, target.name, suffix=target.suffix if suffix is None else suffix)
    try:
        yield tmp_path
        _fsync_file(tmp_path)
        os.replace(tmp_path, target)
        _fsync_dir(folder)
    except BaseException:
        with contextlib.suppress(OSError):
            remove_tree(tmp_path)
        raise


@contextlib.contextmanager
def atomic_folder(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a fresh, empty folder beside ``target``; on success it becomes ``target``.

    The caller builds the complete output in the yielded folder. When the
    ``with`` block exits normally, every regular file in it is fsynced, an
    existing ``target`` (folder, file or link) is renamed aside to a
    temporary name, the new folder is renamed into place and the old entry is
    removed without following links. When the block raises, the new folder is
    removed and ``target`` is untouched. Stale temporary entries of dead
    processes beside ``target`` are removed first.

    The swap is two renames: a kill between them leaves no ``target`` and the
    previous content under a temporary name beside it (never a half-built
    ``target``); the next save or open there renames it back
    (:func:`remove_stale_temps`).

    Parameters
    ----------
    target : str or os.PathLike
        Final path of the folder.

    Yields
    ------
    pathlib.Path
        The folder to fill.

    Raises
    ------
    OSError
        When the folder cannot be created or renamed.
    """
    target = Path(target)
    parent = target.parent if str(target.parent) else Path(".")
    remove_stale_temps(parent)
    tmp = temp_path(parent, target.name, directory=True)
    try:
        yield tmp
        for root, _dirs, files in os.walk(tmp):
            for f in files:
                p = Path(root) / f
                if not p.is_symlink():
                    _fsync_file(p)
        old: Path | None = None
        if os.path.lexists(target):
            old = temp_path(parent, target.name, suffix=_ASIDE, directory=True)
            os.rmdir(old)  # reserve a unique name, then move the target there
            os.rename(target, old)
        try:
            os.rename(tmp, target)
        except BaseException:
            if old is not None:
                with contextlib.suppress(OSError):
                    os.rename(old, target)
            raise
        _fsync_dir(parent)
        if old is not None:
            with contextlib.suppress(OSError):
                remove_tree(old)
    except BaseException:
        with contextlib.suppress(OSError):
            remove_tree(tmp)
        raise


def _fsync_file(path: Path) -> None:
    """Flush a written file's content to disk."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOFOLLOW", 0))
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    """Persist the rename itself (best effort; not supported on Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
