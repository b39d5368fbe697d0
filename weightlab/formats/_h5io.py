"""Helpers shared by the HDF5-based formats: opening, lazy reading, patched saving."""

from __future__ import annotations

import atexit
import contextlib
import io
import os
import shutil
import struct
import weakref
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import h5py
import numpy as np

from ..core.atomic import atomic_path
from ..core.errors import FormatError, WeightLabError
from ..core.model import ModelFile, TensorInfo
from ..core.safejson import JSONLimitError, loads
from . import h5safe

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


@contextlib.contextmanager
def wrap_errors(path: str | os.PathLike[str], action: str) -> Iterator[None]:
    """Turn low-level exceptions (h5py, zipfile, json, OS) into :class:`FormatError`.

    :class:`WeightLabError` passes through unchanged; anything else raised by the
    block becomes ``FormatError("<path>: cannot <action>: <what>")``.
    """
    try:
        yield
    except WeightLabError:
        raise
    except MemoryError:
        raise FormatError(f"cannot {action}: not enough memory", path) from None
    except RecursionError:
        raise FormatError(f"cannot {action}: its structure is nested too deeply", path) from None
    except NotImplementedError as exc:
        raise FormatError(f"cannot {action}: it uses a feature WeightLab cannot read ({exc})", path) from None
    except (
        OSError,
        ValueError,
        KeyError,
        TypeError,
        RuntimeError,
        IndexError,
        EOFError,
        ArithmeticError,
        struct.error,
        zlib.error,
        zipfile.BadZipFile,
    ) as exc:
        what = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
        raise FormatError(f"cannot {action}: {what}", path) from None


#: Deepest nesting accepted in a model config (``config.json``, ``model_config``).
#: Keras configs nest about six levels per nested model; Python's own limit on
#: recursion (about 1,000 frames) is what a deeper document would run into.
MAX_JSON_DEPTH = 256
#: Longest integer literal accepted in a model config (digits). Keras writes
#: seeds and sizes of at most 20 digits; Python refuses more than 4,300.
MAX_JSON_DIGITS = 100


def load_json(raw: bytes | str, what: str, path: str | os.PathLike[str]) -> Any:
    """Parse a model config (JSON) from an untrusted file, within limits.

    Parameters
    ----------
    raw:
        The JSON text (UTF-8 bytes or str).
    what:
        What it is, for messages (``"config.json"``, ``"the model_config attribute"``).
    path:
        The file, for messages.

    Returns
    -------
    Any
        The parsed document.

    Raises
    ------
    FormatError
        Not UTF-8, not JSON, nested deeper than :data:`MAX_JSON_DEPTH` levels,
        or holding an integer of more than :data:`MAX_JSON_DIGITS` digits.
    """
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FormatError(f"{what} is not UTF-8 text (byte {exc.start})", path) from None

    try:
        return loads(raw, max_depth=MAX_JSON_DEPTH, max_digits=MAX_JSON_DIGITS)
    except JSONLimitError as exc:
        if exc.kind == "depth":
            raise FormatError(f"{what} is nested more than {MAX_JSON_DEPTH} levels deep", path) from None
        raise FormatError(f"{what} holds a {exc.found}-digit number (at most {MAX_JSON_DIGITS})", path) from None
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        raise FormatError(f"{what} is not valid JSON: {exc}", path) from None


def config_layers(cfg: Any) -> list[dict[str, Any]]:
    """The layer entries of a (checked, see :func:`check_model_config`) container config.

    Keras 2.0-2.2 Sequential configs store the layer list as ``config`` itself;
    later ones as ``config["layers"]``.
    """
    inner = cfg.get("config") if isinstance(cfg, dict) else None
    if isinstance(inner, list):
        return inner
    if isinstance(inner, dict) and isinstance(inner.get("layers"), list):
        return inner["layers"]
    return []


def layer_config(entry: dict[str, Any]) -> dict[str, Any]:
    """The ``config`` dict of a (checked) layer entry (``{}`` when absent)."""
    cfg = entry.get("config")
    return cfg if isinstance(cfg, dict) else {}


def check_model_config(cfg: Any, what: str, path: str | os.PathLike[str]) -> None:
    """Check that a model config has the shape the readers rely on.

    The parts read are: ``class_name`` (a string), ``config`` (an object, or
    a list of layers in Keras 2.0-2.2 Sequential configs), its ``layers`` (a
    list of objects, each with a string ``class_name`` and an object
    ``config`` whose ``name`` is a string), recursively for nested models.
    Layer names must be unique within a model, as Keras requires.

    Raises
    ------
    FormatError
        Naming the first part that does not fit, e.g. ``config.json: layer 3
        of model 'seq' is not an object``.
    """
    if not isinstance(cfg, dict):
        raise FormatError(f"{what} is not a JSON object", path)
    stack: list[tuple[dict[str, Any], str]] = [(cfg, "the model")]
    while stack:
        node, where = stack.pop()
        if not isinstance(node.get("class_name", ""), str):
            raise FormatError(f"{what}: the class_name of {where} is not a string", path)
        inner = node.get("config")
        if inner is not None and not isinstance(inner, dict | list):
            raise FormatError(f"{what}: the config of {where} is not an object", path)
        layers = inner if isinstance(inner, list) else (inner or {}).get("layers")
        if layers is None:
            continue
        if not isinstance(layers, list):
            raise FormatError(f"{what}: the layers of {where} are not a list", path)
        seen: set[str] = set()
        for i, entry in enumerate(layers):
            if not isinstance(entry, dict):
                raise FormatError(f"{what}: layer {i} of {where} is not an object", path)
            if not isinstance(entry.get("class_name", ""), str):
                raise FormatError(f"{what}: layer {i} of {where} has a class_name that is not a string", path)
            lcfg = entry.get("config")
            if lcfg is not None and not isinstance(lcfg, dict):
                raise FormatError(f"{what}: the config of layer {i} of {where} is not an object", path)
            lname = (lcfg or {}).get("name", "")
            if not isinstance(lname, str):
                raise FormatError(f"{what}: layer {i} of {where} has a name that is not a string", path)
            if lname and lname in seen:
                raise FormatError(f"{what}: {where} has two layers named {lname!r}", path)
            seen.add(lname)
            if isinstance((lcfg or {}).get("layers"), list):
                stack.append((entry, f"model {lname!r}"))


def has_hdf5_signature(head: bytes) -> bool:
    """True when ``head`` (the first 2 KiB or more of a file) holds an HDF5 signature.

    HDF5 looks for its signature at 0, 512, 1024, 2048... (after a user block).
    """
    return any(head[o : o + 8] == HDF5_SIGNATURE for o in (0, 512, 1024, 2048))


def read_head(path: str | os.PathLike[str], n: int = 4096) -> bytes:
    """Return the first ``n`` bytes of a regular file, or ``b""`` when unreadable."""
    try:
        with open(path, "rb") as fh:
            return fh.read(n)
    except OSError:
        return b""


def open_h5(
    source: str | os.PathLike[str] | IO[bytes] | io.RawIOBase, path: str | os.PathLike[str]
) -> h5py.File:
    """Open an HDF5 file read-only (``source`` may be a path or a binary file object).

    Raises
    ------
    FormatError
        When HDF5 cannot open it (damaged, truncated, not HDF5); names ``path``.
    """
    with wrap_errors(path, "open the HDF5 file"):
        h5 = h5py.File(source, "r")
    if not isinstance(source, (str, os.PathLike)):
        _FILEOBJ_FILES.add(h5)
    return h5


class GuardedWindow(io.RawIOBase):
    """A read-only file object over ``[start, start + size)`` of another file, for h5py.

    HDF5 reads every file WeightLab opens through one of these (h5py's
    file-object driver), so each read can be checked before HDF5 parses it:
    a global heap collection (where HDF5 keeps variable-length strings such
    as ``model_config`` and ``layer_names``) whose object list makes no
    progress sends HDF5 1.14's ``H5HG__cache_heap_deserialize`` into an
    endless loop holding the GIL (a zeroed block in a file is enough). Reads
    that contain such a collection fail with :class:`OSError` instead, and
    :attr:`problem` says what was found.

    Parameters
    ----------
    fh:
        An open binary file (closed by :meth:`close`).
    start, size:
        The window in ``fh`` (a whole file: ``0`` and its size).
    """

    def __init__(self, fh: io.BufferedReader, start: int, size: int):
        self._fh, self._start, self._size, self._pos = fh, start, size, 0
        self._checked: set[int] = set()
        self._tails: dict[int, bytes] = {}  # end offset of a read -> its last 7 bytes
        #: What a read found wrong (a damaged global heap), or None.
        self.problem: str | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def _pread(self, offset: int, n: int) -> bytes:
        n = max(0, min(n, self._size - offset))
        return os.pread(self._fh.fileno(), n, self._start + offset) if n else b""

    def readinto(self, buf: Any) -> int:
        pos = self._pos
        n = max(0, min(len(buf), self._size - pos))
        if n == 0:
            return 0
        self._fh.seek(self._start + pos)
        view = memoryview(buf)[:n]
        got = self._fh.readinto(view)
        self._pos += got
        if got:
            self._check_heaps(pos, view[:got])
        return got

    def _check_heaps(self, pos: int, data: memoryview) -> None:
        """Raise OSError when ``data`` (at ``pos``) holds a global heap collection HDF5 would loop on."""
        # HDF5 may join two reads into one buffer (its metadata accumulator): a
        # signature may begin in the read that ended where this one starts.
        head = self._tails.get(pos, b"")
        chunk = head + bytes(data)
        if len(self._tails) > 4096:
            self._tails.clear()
        self._tails[pos + len(data)] = chunk[-7:]
        base = pos - len(head)
        i = chunk.find(_GCOL)
        while i >= 0:
            offset = base + i
            if offset not in self._checked:
                self._checked.add(offset)
                header = self._pread(offset, 16)
                size = int.from_bytes(header[8:16], "little") if len(header) == 16 else 0
                problem = _global_heap_problem(self._pread(offset, min(size, _GCOL_MAX_READ)))
                if problem is not None:
                    self.problem = f"damaged HDF5 file: the global heap collection at byte {offset} {problem}"
                    raise OSError(self.problem)
            i = chunk.find(_GCOL, i + 1)

    def archive_fd(self) -> int:
        """Descriptor of the whole underlying file (for positioned reads at ``start + offset``)."""
        return self._fh.fileno()

    def close(self) -> None:
        self._fh.close()
        super().close()


#: Signature and version of an HDF5 global heap collection ("GCOL", version 1, 3 reserved bytes).
_GCOL = b"GCOL\x01\x00\x00\x00"
#: Most bytes of a collection examined (HDF5 makes them 4 KiB unless one object is larger).
_GCOL_MAX_READ = 64 * 1024**2


def _global_heap_problem(data: bytes) -> str | None:
    """What would make HDF5 loop on the global heap collection ``data`` starts with, or None.

    Walks the objects exactly as HDF5's ``H5HG__cache_heap_deserialize``
    does (8-byte lengths): each object advances by its header plus its
    8-byte-aligned size (object 0, the free space, by its size alone); a step
    of 0, or one so large that it wraps around, never reaches the end.
    """
    if len(data) < 16:
        return None
    size = int.from_bytes(data[8:16], "little")
    end = min(size, len(data))
    p = 16
    while p + 16 <= end:
        idx = int.from_bytes(data[p : p + 2], "little")
        obj = int.from_bytes(data[p + 8 : p + 16], "little")
        step = obj if idx == 0 else 16 + ((obj + 7) & ~7)
        step &= (1 << 64) - 1
        if step == 0 or step >= 1 << 63:
            return f"has an object (index {idx}) of impossible size {obj}"
        p += step
    return None


#: HDF5 files opened on Python file objects and not closed yet. HDF5 closes
#: leftovers from its own C ``atexit`` handler, after the interpreter is gone;
#: for a file object that calls back into Python and crashes the process
#: (segmentation fault at exit). Closing them from Python's ``atexit`` first,
#: which runs before, avoids it whoever forgot to close a model.
_FILEOBJ_FILES: weakref.WeakSet[h5py.File] = weakref.WeakSet()


@atexit.register
def _close_fileobj_files() -> None:
    for h5 in list(_FILEOBJ_FILES):
        with contextlib.suppress(Exception):
            h5.close()


def open_window(window: GuardedWindow, shown: str | os.PathLike[str]) -> h5py.File:
    """Open the HDF5 file seen through ``window``; on any failure close the window.

    Raises
    ------
    FormatError
        When HDF5 cannot read it; the window's own finding (a looping global
        heap...) is the message when it has one. Names ``shown``.
    """
    try:
        return open_h5(window, shown)
    except FormatError:
        window.close()
        if window.problem:
            raise FormatError(window.problem, shown) from None
        raise
    except BaseException:
        window.close()
        raise


def open_guarded(
    path: str | os.PathLike[str],
    shown: str | os.PathLike[str],
    after_close: Callable[[], None] | None = None,
) -> H5Reader:
    """Open an HDF5 file for reading through a :class:`GuardedWindow` (see there why).

    Tensors of 1 MiB or more are still read with positioned reads on the
    file's descriptor (:meth:`H5Reader._read_raw`). ``after_close`` runs
    once the reader is closed (removing a temporary copy...).

    Raises
    ------
    FormatError
        When the file cannot be opened or HDF5 cannot read it; names ``shown``.
    """
    with wrap_errors(shown, "open the file"):
        fh = open(path, "rb")  # noqa: SIM115 - closed by the reader
        try:
            size = os.fstat(fh.fileno()).st_size
        except BaseException:
            fh.close()
            raise
    window = GuardedWindow(fh, 0, size)
    h5 = open_window(window, shown)

    def cleanup() -> None:
        window.close()
        if after_close is not None:
            after_close()

    return H5Reader(h5, size, shown, cleanup=cleanup, raw=(window.archive_fd, 0), window=window)


def str_list(value: Any) -> list[str]:
    """Decode an HDF5 string-array attribute (bytes or str items) into a list of str."""
    if value is None:
        return []
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in np.atleast_1d(value)]


def attr_str(obj: h5py.HLObject, name: str) -> str | None:
    """Return a string attribute of ``obj`` as str, or None when absent."""
    if name not in obj.attrs:
        return None
    v = obj.attrs[name]
    return v.decode("utf-8") if isinstance(v, bytes) else str(v)


def tensor_info(
    layer: str,
    weight: str,
    ds: h5py.Dataset,
    file_size: int,
    path: str | os.PathLike[str],
    trainable: bool = True,
) -> TensorInfo:
    """Check ``ds`` with :func:`h5safe.check_dataset` and describe it as a tensor."""
    h5safe.check_dataset(ds, file_size, path)
    return TensorInfo(
        name=f"{layer}/{weight}",
        layer=layer,
        weight=weight,
        key=ds.name.lstrip("/"),
        shape=tuple(int(d) for d in ds.shape or ()),
        dtype=ds.dtype.name,
        trainable=trainable,
    )


class H5Reader:
    """Lazy :class:`~weightlab.core.model.TensorReader` over an open :class:`h5py.File`.

    Parameters
    ----------
    h5:
        The open file (kept open until :meth:`close`).
    file_size:
        Size of the HDF5 data in bytes (for shape-bomb checks).
    path:
        The file the user opened, for error messages.
    cleanup:
        Called once after the file is closed (removing a temporary copy...).
    """

    def __init__(
        self,
        h5: h5py.File,
        file_size: int,
        path: str | os.PathLike[str],
        cleanup: Callable[[], None] | None = None,
        raw: tuple[Callable[[], int], int] | None = None,
        window: GuardedWindow | None = None,
    ):
        self.h5 = h5
        self.file_size = file_size
        self.path = path
        self.window = window
        self._cleanup = cleanup
        self._raw = raw if raw is not None else _raw_source(h5)

    @contextlib.contextmanager
    def errors(self, action: str) -> Iterator[None]:
        """:func:`wrap_errors`, reporting what the :class:`GuardedWindow` found, if anything."""
        try:
            with wrap_errors(self.path, action):
                yield
        except FormatError:
            if self.window is not None and self.window.problem:
                raise FormatError(self.window.problem, self.path) from None
            raise

    def read(self, info: TensorInfo) -> np.ndarray:
        """Read ``info.key`` (safety-checked); shape ``info.shape``, dtype ``info.dtype``.

        Raises
        ------
        FormatError
            When the file is closed or damaged, or the stored tensor no longer
            matches ``info``.
        """
        if not self.h5:
            raise FormatError(f"cannot read {info.name!r}: the file is closed", self.path)
        with self.errors(f"read tensor {info.key!r}"):
            ds = h5safe.dataset(self.h5, info.key, self.file_size, self.path)
            arr = self._read_raw(ds)
            if arr is None:
                arr = h5safe.read(self.h5, info.key, self.file_size, self.path)
        if arr.shape != info.shape or arr.dtype.name != info.dtype:
            raise FormatError(
                f"tensor {info.key!r} is {arr.shape} {arr.dtype}, expected {info.shape}", self.path
            )
        return arr

    def _read_raw(self, ds: h5py.Dataset) -> np.ndarray | None:
        """Read a contiguous, uncompressed dataset's bytes straight from the file, or None.

        Bit-identical to ``ds[()]`` (the same bytes, viewed with the stored
        dtype, byte order included), without h5py's per-read overhead and in
        16 MiB positioned reads (``os.preadv``) on the descriptor HDF5 itself
        reads, so a file replaced on disk since it was opened is not read
        instead. Used only when :func:`h5safe.contiguous_extent` vouches for
        the layout and below :data:`_RAW_MIN_BYTES` never; None means: read
        through h5py.
        """
        if self._raw is None or not hasattr(os, "preadv"):
            return None
        extent = h5safe.contiguous_extent(ds, self.file_size)
        if extent is None or extent[1] < _RAW_MIN_BYTES:
            return None
        offset, nbytes = extent
        get_fd, base = self._raw
        try:
            fd = get_fd()
            arr = np.empty(ds.shape, dtype=ds.dtype)
            buf = arr.reshape(-1).view(np.uint8).data  # a writable memoryview of arr's bytes
            pos = 0
            while pos < nbytes:
                n = os.preadv(fd, [buf[pos : pos + _RAW_CHUNK]], base + offset + pos)
                if n <= 0:
                    return None
                pos += n
        except (OSError, ValueError, TypeError, AttributeError):
            return None
        # Cheap cross-check with HDF5's own read of the first and last element.
        first = (0,) * ds.ndim
        last = tuple(d - 1 for d in ds.shape)
        flat = arr.reshape(-1)
        for index, pos in ((first, 0), (last, flat.size - 1)):
            if flat[pos : pos + 1].tobytes() != np.asarray(ds[index], ds.dtype).reshape(-1).tobytes():
                return None
        return arr

    def close(self) -> None:
        """Close the HDF5 file and run the cleanup callback (idempotent)."""
        with contextlib.suppress(Exception):
            self.h5.close()
        if self._cleanup is not None:
            cleanup, self._cleanup = self._cleanup, None
            cleanup()


#: Tensors smaller than this are read through h5py (the raw path only pays off for large ones).
_RAW_MIN_BYTES = 1 << 20
_RAW_CHUNK = 16 << 20


def _raw_source(h5: h5py.File) -> tuple[Callable[[], int], int] | None:
    """``(get file descriptor, base offset)`` for an HDF5 file HDF5 opened by path, else None.

    Only for the default ``sec2`` driver without a user block (dataset
    offsets are then file offsets).
    """
    try:
        if h5.driver != "sec2" or h5.userblock_size != 0:
            return None
    except Exception:  # noqa: BLE001 - an optional fast path: any h5py failure here falls back to h5py's reads
        return None
    return h5.id.get_vfd_handle, 0


def prepare_changes(model: ModelFile, changed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Map canonical names to file keys and check the new values.

    Returns
    -------
    dict
        ``{file key: array}`` with each array of the stored shape and dtype
        (values cast with ``same_kind`` casting, e.g. float64 -> float32).

    Raises
    ------
    WeightLabError
        For an unknown tensor name.
    FormatError
        When an array's shape differs from the stored one or its dtype cannot be
        cast safely (e.g. float to int).
    """
    out: dict[str, np.ndarray] = {}
    for name, value in changed.items():
        info = model.tensor(name)
        arr = np.asarray(value)
        if arr.shape != info.shape:
            raise FormatError(
                f"cannot save {name!r}: new value has shape {arr.shape}, the file stores {info.shape}",
                model.path,
            )
        try:
            out[info.key] = arr.astype(info.dtype, casting="same_kind", copy=False)
        except TypeError:
            raise FormatError(
                f"cannot save {name!r}: new value has dtype {arr.dtype}, the file stores {info.dtype}",
                model.path,
            ) from None
    return out


def check_source_unchanged(model: ModelFile) -> None:
    """Refuse to save when the opened file changed on disk since it was opened.

    Uses ``model.attrs["_stat"]`` = ``(size, mtime_ns)`` recorded at open.

    Raises
    ------
    FormatError
        When the file is gone or its size/modification time changed.
    """
    expected = model.attrs.get("_stat")
    try:
        st = os.stat(model.path)
    except OSError:
        raise FormatError("cannot save: the opened file no longer exists", model.path) from None
    if expected is not None and (st.st_size, st.st_mtime_ns) != tuple(expected):
        raise FormatError("cannot save: the file was changed on disk since it was opened", model.path)


def file_stat(path: str | os.PathLike[str]) -> tuple[int, int]:
    """Return ``(size, mtime_ns)`` of ``path`` (recorded at open, checked at save)."""
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


def patch_h5(h5_path: Path, updates: Mapping[str, np.ndarray], path: str | os.PathLike[str]) -> None:
    """Overwrite the datasets ``updates`` in place in the HDF5 file at ``h5_path``.

    Only the data of those datasets changes; attributes, other datasets and the
    layout stay as they are. ``path`` names the file in error messages.

    Raises
    ------
    UnsafeFileError, FormatError
        When a target dataset is unsafe, missing or cannot be written.
    """
    size = h5_path.stat().st_size
    with wrap_errors(path, "write the new tensor values"), h5py.File(h5_path, "r+") as h5:
        for key, arr in updates.items():
            ds = h5safe.dataset(h5, key, size, path)
            ds[...] = arr


@contextlib.contextmanager
def atomic_output(out: str | os.PathLike[str]) -> Iterator[Path]:
    """:func:`~weightlab.core.atomic.atomic_path` with OS errors turned into FormatError.

    Raises
    ------
    FormatError
        When ``out`` is a folder, its folder does not exist or is not writable,
        or writing fails; nothing is left behind.
    """
    out = Path(out)
    if out.is_dir():
        raise FormatError("cannot save: this is a folder", out)
    with wrap_errors(out, "save"), atomic_path(out) as tmp:
        yield tmp


def save_patched_h5(model: ModelFile, changed: Mapping[str, np.ndarray], out: str | os.PathLike[str]) -> None:
    """Save a plain HDF5 model file: a byte copy of the source with ``changed`` patched in.

    Parameters
    ----------
    model:
        The opened source (``model.path`` is copied, never written).
    changed:
        ``{canonical name: array}`` of the stored shapes.
    out:
        Destination, written atomically.

    Raises
    ------
    FormatError
        Bad names/shapes, source changed on disk, destination not writable.
    """
    updates = prepare_changes(model, changed)
    check_source_unchanged(model)
    with atomic_output(out) as tmp:
        shutil.copyfile(model.path, tmp)
        patch_h5(tmp, updates, out)


def sniff_h5(path: str | os.PathLike[str], predicate: Callable[[h5py.File], bool]) -> bool:
    """True when ``path`` is an HDF5 file (by signature) for which ``predicate(file)`` holds.

    Never raises: unreadable or damaged files give False.
    """
    if not has_hdf5_signature(read_head(path, 2056)):
        return False
    try:
        with h5py.File(path, "r") as h5:
            return bool(predicate(h5))
    except Exception:  # noqa: BLE001 - sniffing must never raise
        return False
