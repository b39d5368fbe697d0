"""Links and special files in model folders: refuse what leads outside, copy without following.

Folder formats (a SavedModel folder, the files of a checkpoint prefix) are
opened as a set of files. A stranger's folder may hold symlinks that lead
elsewhere (``variables -> /home/you/other-model/variables``,
``assets/x -> /etc/passwd``) or special files (a FIFO that blocks a reader
forever, a device). The policy, applied when reading and again when saving:

* a **regular file** or a **folder** is fine;
* a **symlink to a regular file inside the opened folder** is fine: it is read
  through, and a saved copy holds a regular file with its content (never a
  link);
* a **symlink that leads outside** the opened folder (resolved with
  :func:`os.path.realpath`, so ``a -> b -> /etc/x`` counts as outside), a
  **symlink to a folder** (anywhere: folder links allow loops and copy bombs,
  and TensorFlow never writes them), a **broken symlink** and any **special
  file** (FIFO, socket, device) are refused with
  :class:`~weightlab.core.errors.UnsafeFileError` naming the entry.

Copies are built with :func:`copy_tree`, which creates only new regular files
and folders and never writes through a link.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable, Iterable
from pathlib import Path

from .errors import FormatError, UnsafeFileError

__all__ = ["check_entries", "check_prefix", "check_tree", "copy_tree", "is_inside"]

_KINDS = {
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


def is_inside(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> bool:
    """True when the real path of ``path`` is ``root``'s real path or below it."""
    real, top = os.path.realpath(path), os.path.realpath(root)
    return real == top or real.startswith(top.rstrip(os.sep) + os.sep)


def _kind(mode: int) -> str:
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file or folder")


def _check(path: str, root_real: str, shown: str | os.PathLike[str], rel: str) -> None:
    """Refuse ``path`` (``rel`` inside the opened folder) unless it is allowed (see the module doc)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return  # vanished, or never there: the reader reports what it misses
    except OSError as exc:
        raise FormatError(f"cannot read {rel!r}: {exc.strerror or exc}", shown) from None
    if stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode):
        return
    if not stat.S_ISLNK(st.st_mode):
        raise UnsafeFileError(f"{rel!r} is {_kind(st.st_mode)}; WeightLab reads only regular files", shown)
    try:
        target = os.readlink(path)
    except OSError:
        target = "?"
    real = os.path.realpath(path)
    if not (real == root_real or real.startswith(root_real.rstrip(os.sep) + os.sep)):
        raise UnsafeFileError(
            f"{rel!r} is a link to {target!r}, outside the opened folder; "
            "WeightLab does not follow links out of a model folder",
            shown,
        )
    try:
        st = os.stat(path)
    except OSError:
        raise UnsafeFileError(f"{rel!r} is a broken link (to {target!r})", shown) from None
    if stat.S_ISDIR(st.st_mode):
        raise UnsafeFileError(
            f"{rel!r} is a link to the folder {target!r}; WeightLab does not follow links to folders", shown
        )
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeFileError(f"{rel!r} is a link to {_kind(st.st_mode)} ({target!r})", shown)


def check_tree(root: str | os.PathLike[str], shown: str | os.PathLike[str] | None = None) -> None:
    """Check every entry below the folder ``root`` against the link policy (see the module doc).

    Parameters
    ----------
    root : str or os.PathLike
        The opened folder (it may itself be a link; its real path is the boundary).
    shown : str or os.PathLike, optional
        Path named in errors; defaults to ``root``.

    Raises
    ------
    UnsafeFileError
        For a link leading outside ``root``, a link to a folder, a broken link
        or a special file; the message names the entry relative to ``root``.
    FormatError
        When an entry cannot be examined.
    """
    shown = root if shown is None else shown
    root_real = os.path.realpath(root)
    for dirpath, dirnames, filenames in os.walk(root):  # never descends into links
        for name in (*dirnames, *filenames):
            path = os.path.join(dirpath, name)
            _check(path, root_real, shown, os.path.relpath(path, root))


def check_entries(
    folder: str | os.PathLike[str], names: Iterable[str], shown: str | os.PathLike[str] | None = None
) -> None:
    """Check the entries ``names`` of ``folder`` (those that exist) against the link policy.

    Raises
    ------
    UnsafeFileError, FormatError
        As :func:`check_tree`.
    """
    shown = folder if shown is None else shown
    root_real = os.path.realpath(folder)
    for name in names:
        _check(os.path.join(folder, name), root_real, shown, name)


def check_prefix(prefix: str, shown: str | os.PathLike[str] | None = None) -> None:
    """Check the files of the tensor-bundle prefix ``prefix`` and its folder's ``checkpoint`` state file.

    The files are ``<prefix>.index``, ``<prefix>.data-*``, ``<prefix>.meta``
    and ``checkpoint`` in the prefix's folder, which is the boundary.

    Raises
    ------
    UnsafeFileError, FormatError
        As :func:`check_tree`.
    """
    folder, base = os.path.split(prefix)
    folder = folder or "."
    try:
        names = os.listdir(folder)
    except OSError:
        return
    wanted = {base + ".index", base + ".meta", "checkpoint"}
    mine = [n for n in names if n in wanted or n.startswith(base + ".data-")]
    check_entries(folder, mine, prefix + ".index" if shown is None else shown)


def copy_tree(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    skip: Callable[[str], bool] = lambda rel: False,
) -> None:
    """Copy the folder ``src`` into the existing, empty folder ``dst`` as new regular files and folders.

    ``src`` is checked with :func:`check_tree` first. Links inside ``src``
    (allowed ones lead to regular files inside it) become regular files with
    the target's content. Every file and folder is created new (``O_EXCL``),
    with the default mode reduced by the umask; modes and times of the
    source are not copied.

    Parameters
    ----------
    src : str or os.PathLike
        The opened folder.
    dst : str or os.PathLike
        A fresh folder this process created.
    skip : callable, optional
        ``skip(rel) -> bool`` for paths relative to ``src`` (``"variables/variables.index"``,
        POSIX separators) not to copy; a skipped folder is not descended into.

    Raises
    ------
    UnsafeFileError
        When ``src`` holds a link or file the policy refuses.
    OSError
        When reading or writing fails.
    """
    check_tree(src)
    src, dst = os.fspath(src), os.fspath(dst)
    root_real = os.path.realpath(src)
    for dirpath, dirnames, filenames in os.walk(src):
        rel_dir = os.path.relpath(dirpath, src)
        keep = []
        for name in dirnames:
            rel = os.path.normpath(os.path.join(rel_dir, name))
            if os.path.islink(os.path.join(dirpath, name)):
                _check(os.path.join(dirpath, name), root_real, src, rel)  # raises: a link to a folder
            if skip(Path(rel).as_posix()):
                continue
            os.mkdir(os.path.join(dst, rel), 0o777)
            keep.append(name)
        dirnames[:] = keep
        for name in filenames:
            rel = os.path.normpath(os.path.join(rel_dir, name))
            if skip(Path(rel).as_posix()):
                continue
            path = os.path.join(dirpath, name)
            _check(path, root_real, src, rel)  # again: the folder may have changed since check_tree
            _copy_file(os.path.realpath(path), os.path.join(dst, rel))


def _copy_file(src: str, dst: str) -> None:
    """Copy a regular file's content to a new file ``dst`` (never a FIFO, never through a link)."""
    flags = (
        os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    )
    fd = os.open(src, flags)
    with os.fdopen(fd, "rb") as fin:
        st = os.fstat(fin.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeFileError(f"{os.path.basename(src)!r} is {_kind(st.st_mode)}", src)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fin.fileno(), True)
        with open(dst, "xb") as fout:
            shutil.copyfileobj(fin, fout, 1 << 20)
