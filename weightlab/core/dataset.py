"""Held-out sets: the labelled data a model is evaluated on while it is edited.

A held-out set is a NumPy ``.npz`` archive with the arrays:

``x``
    Inputs, numeric (any integer, unsigned or float dtype; bool is accepted),
    shape ``(N, ...)`` where ``...`` is one sample's shape in the model's own
    axis order (``(N, 8, 8, 1)`` for 8x8 grey images with a channel axis,
    ``(N, 64)`` for flat vectors). Every value must be finite.
``y``
    Labels, either integer class indices of shape ``(N,)`` (``0 <= y < C``),
    or one-hot / class probabilities of shape ``(N, C)`` (reduced with
    ``argmax`` over the last axis). A float ``(N,)`` array is accepted when
    all its values are whole numbers. Optional: an archive holding ``x``
    alone is an *unlabelled* set (``HeldOut.y`` is None); the engine then
    reports the agreement of the edited model with the unedited one instead
    of accuracy. An archive with ``x`` and other arrays but no ``y`` is
    refused (a misnamed label array must not be silently ignored).

The archive is read as untrusted input, like a model file, with bounded work:

* nothing is ever unpickled: arrays of Python objects are refused from their
  header, before any data is read (NumPy's ``allow_pickle=False``);
* each array's header (shape, dtype) is read first, and an array whose declared
  size does not match the size of its member in the zip, an encrypted member,
  a dtype that is not real numbers (complex, dates, structured, strings) or
  shapes that do not fit together are refused before any data is read;
* ``x`` and ``y`` together may hold at most :data:`MAX_HELDOUT_BYTES` (4 GiB)
  once read, so a zip bomb (a small file that inflates to many gigabytes) is
  refused from its header; ``load_heldout(..., max_bytes=...)`` changes it;
* zip damage (a bad CRC, a broken deflate stream, an unsupported compression
  method) is reported as a :class:`~weightlab.core.errors.DataError`.
"""

from __future__ import annotations

import math
import os
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DataError

__all__ = ["HeldOut", "load_heldout", "conform_inputs", "MAX_HELDOUT_BYTES", "MAX_LABEL"]

#: Most bytes ``x`` and ``y`` may hold once read (4 GiB); more is refused from
#: the arrays' headers. Live re-evaluation after every edit on a larger set is
#: impractical anyway: evaluate on a subset.
MAX_HELDOUT_BYTES = 4 * 1024**3
#: Largest class index accepted in ``y`` (``2**31 - 1``).
MAX_LABEL = 2**31 - 1
#: Longest ``.npy`` header read (NumPy's own default).
_MAX_HEADER = 10_000
#: dtype kinds accepted: bool, signed and unsigned integers, floats.
_REAL_KINDS = "biuf"
#: Everything the zip and zlib modules raise for a damaged or odd archive.
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError)


@dataclass(frozen=True)
class HeldOut:
    """A loaded held-out set.

    Attributes
    ----------
    x:
        Inputs, shape ``(N, ...)``, the dtype stored in the file (numeric).
    y:
        Class indices, shape ``(N,)``, dtype ``int64``, all ``>= 0``; None for
        an unlabelled set.
    num_classes:
        Number of classes the labels imply: ``C`` for one-hot labels of shape
        ``(N, C)``, ``max(y) + 1`` for integer labels, 0 without labels. A
        model may have more output classes than this.
    path:
        The file the set was read from.
    """

    x: np.ndarray
    y: np.ndarray | None
    num_classes: int
    path: Path

    @property
    def labelled(self) -> bool:
        """True when the set has labels ``y``."""
        return self.y is not None

    @property
    def num_samples(self) -> int:
        """Number of samples ``N``."""
        return int(self.x.shape[0])

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one input sample, ``x.shape[1:]``."""
        return tuple(int(d) for d in self.x.shape[1:])


@dataclass(frozen=True)
class _Header:
    """What an ``.npy`` member declares, read without its data."""

    info: zipfile.ZipInfo
    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def _read_header(zf: zipfile.ZipFile, key: str, info: zipfile.ZipInfo, path: Path) -> _Header:
    """Read and check the header of member ``info`` (array ``key``) without its data."""
    if info.flag_bits & 0x1:
        raise DataError(f"array {key!r} is encrypted; save the held-out set without a password", path)
    try:
        with zf.open(info) as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(f, max_header_size=_MAX_HEADER)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(f, max_header_size=_MAX_HEADER)
            else:
                raise ValueError(f"unsupported .npy format version {version}")
            header_len = f.tell()
    except ValueError as exc:
        raise DataError(f"array {key!r} is not a NumPy .npy array ({exc})", path) from None
    if dtype.hasobject:
        raise DataError(
            f"array {key!r} holds Python objects (pickled data, dtype {dtype}), which WeightLab does not load; "
            "save plain numeric arrays",
            path,
        )
    header = _Header(info, tuple(int(d) for d in shape), dtype)
    if info.file_size - header_len != header.nbytes:
        raise DataError(
            f"array {key!r} declares shape {header.shape} of {dtype} ({header.nbytes} bytes) but its member "
            f"holds {info.file_size - header_len} bytes of data",
            path,
        )
    return header


def _read_data(zf: zipfile.ZipFile, key: str, header: _Header, path: Path) -> np.ndarray:
    """Read the array whose header was checked; the zip's CRC is checked too."""
    with zf.open(header.info) as f:
        arr = np.lib.format.read_array(f, allow_pickle=False, max_header_size=_MAX_HEADER)
        if f.read(1):  # also reaches the end of the member, where its CRC is checked
            raise DataError(f"array {key!r} has data after its end", path)
    if arr.shape != header.shape or arr.dtype != header.dtype:  # pragma: no cover - numpy reads what it declared
        raise DataError(f"array {key!r} does not hold what its header declares", path)
    return arr


def _not_npz(p: Path) -> DataError:
    """The error for a file that is no zip: a single .npy array, or something else."""
    try:
        with p.open("rb") as f:
            version = np.lib.format.read_magic(f)
            reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape = reader(f, max_header_size=_MAX_HEADER)[0]
    except (ValueError, OSError, EOFError):
        return DataError("not a NumPy .npz archive with arrays x and y", p)
    return DataError(
        f"not an .npz archive: it holds a single array of shape {tuple(shape)}; "
        "save with numpy.savez(path, x=..., y=...)",
        p,
    )


def load_heldout(path: str | os.PathLike[str], *, max_bytes: int | None = None) -> HeldOut:
    """Load a held-out set from an ``.npz`` file with arrays ``x`` and (optionally) ``y``.

    Parameters
    ----------
    path:
        The ``.npz`` file (see the module docstring for the expected arrays).
    max_bytes:
        Most bytes ``x`` and ``y`` may hold together; None means
        :data:`MAX_HELDOUT_BYTES`.

    Returns
    -------
    HeldOut
        ``x`` as stored (numeric dtype, shape ``(N, ...)``), ``y`` as ``int64``
        class indices of shape ``(N,)``, or None when the archive holds ``x``
        alone.

    Raises
    ------
    DataError
        The message names the file. Raised when the file does not exist or is
        not an ``.npz`` archive, or the archive is damaged (CRC, deflate
        stream, encryption, unsupported compression); when ``x`` is missing,
        or ``y`` is missing while other arrays are present (the message lists
        the keys the file has), or an array is there twice; when an array holds
        Python objects (pickled data is never loaded), is not an ``.npy``
        array, or declares more data than its member holds; when ``x`` and
        ``y`` together would exceed ``max_bytes``; when ``x`` is not real
        numbers (bool, integer or float) or not finite or has no sample axis;
        when ``y`` is not of shape ``(N,)`` or ``(N, C)``, is not real numbers,
        holds NaN, non-whole or negative labels or labels above
        :data:`MAX_LABEL`; when ``x`` and ``y`` have different lengths; when the
        set is empty.
    """
    p = Path(path)
    if not p.exists():
        raise DataError("held-out file does not exist", p)
    if not p.is_file():
        raise DataError("held-out path is not a file", p)
    limit = MAX_HELDOUT_BYTES if max_bytes is None else max_bytes
    try:
        if not zipfile.is_zipfile(p):
            raise _not_npz(p)
        with zipfile.ZipFile(p) as zf:
            members: dict[str, zipfile.ZipInfo] = {}
            for info in zf.infolist():
                key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                if key in members:
                    raise DataError(f"the archive holds array {key!r} twice", p)
                members[key] = info
            keys = list(members)
            missing = [k for k in ("x", "y") if k not in keys and not (k == "y" and keys == ["x"])]
            if missing:
                raise DataError(
                    f"missing array(s) {', '.join(repr(k) for k in missing)}; the file has {keys or 'no arrays'} "
                    "(an unlabelled set holds x alone)",
                    p,
                )
            hx = _read_header(zf, "x", members["x"], p)
            hy = _read_header(zf, "y", members["y"], p) if "y" in members else None
            _check_headers(hx, hy, limit, p)
            x = _read_data(zf, "x", hx, p)
            y = _read_data(zf, "y", hy, p) if hy is not None else None
    except _ZIP_ERRORS as exc:
        what = "damaged compressed data" if isinstance(exc, zlib.error) else type(exc).__name__
        raise DataError(f"cannot read the .npz archive ({what}: {exc})", p) from None

    if y is None:
        _check_finite(x, p)
        return HeldOut(x=x, y=None, num_classes=0, path=p)

    if y.ndim == 2:
        num_classes = int(y.shape[1])
        if not np.all(np.isfinite(y)):
            raise DataError("y (one-hot / probabilities) contains NaN or infinite values", p)
        labels = np.argmax(y, axis=1).astype(np.int64)
    else:
        if y.dtype.kind == "f":
            bad = int(np.count_nonzero(~np.isfinite(y)))
            if bad:
                raise DataError(f"y contains {bad} NaN or infinite label(s); class indices must be whole numbers", p)
            if not np.all(y == np.round(y)):
                raise DataError("y has non-integer labels; class indices must be whole numbers", p)
        if y.min() < 0:
            bad = int(np.count_nonzero(y < 0))
            raise DataError(f"y has {bad} negative label(s) (smallest {y.min()}); labels must be >= 0", p)
        if y.max() > MAX_LABEL:
            raise DataError(f"y has a label of {y.max()}; class indices must be at most {MAX_LABEL}", p)
        labels = y.astype(np.int64)
        num_classes = int(labels.max()) + 1
    _check_finite(x, p)
    return HeldOut(x=x, y=labels, num_classes=num_classes, path=p)


def _check_headers(hx: _Header, hy: _Header | None, limit: int, p: Path) -> None:
    """Refuse, from the headers alone, arrays that are not a held-out set or too large to read."""
    if hx.dtype.kind not in _REAL_KINDS:
        raise DataError(f"x must be a real numeric array (bool, integer or float); received dtype {hx.dtype}", p)
    if len(hx.shape) < 2:
        raise DataError(
            f"x must have shape (N, ...) with at least one feature axis; received shape {hx.shape}", p
        )
    if hy is not None:
        if hy.dtype.kind not in _REAL_KINDS:
            raise DataError(f"y must be numeric labels (bool, integer or float); received dtype {hy.dtype}", p)
        if not (len(hy.shape) == 1 or (len(hy.shape) == 2 and hy.shape[1] >= 1)):
            raise DataError(
                f"y must have shape (N,) (class indices) or (N, C) (one-hot); received shape {hy.shape}", p
            )
        if hx.shape[0] != hy.shape[0]:
            raise DataError(f"x and y differ in length: x has {hx.shape[0]} samples, y has {hy.shape[0]}", p)
    if hx.shape[0] == 0:
        raise DataError("the held-out set is empty (0 samples)", p)
    total = hx.nbytes + (hy.nbytes if hy is not None else 0)
    if total > limit:
        raise DataError(
            f"the held-out set would take {total} bytes once read (x of shape {hx.shape} and dtype {hx.dtype}); "
            f"the limit is {limit}; evaluate on a subset",
            p,
        )


def _check_finite(x: np.ndarray, p: Path) -> None:
    """Raise DataError when float inputs hold NaN or infinite values."""
    if np.issubdtype(x.dtype, np.floating) and not np.all(np.isfinite(x)):
        bad = int(np.count_nonzero(~np.isfinite(x)))
        raise DataError(f"x contains {bad} NaN or infinite value(s)", p)


def conform_inputs(
    x: np.ndarray, expected: Sequence[int | None], path: str | os.PathLike[str] | None = None
) -> np.ndarray:
    """Check that inputs fit a model's input shape; add a channel axis when unambiguous.

    Parameters
    ----------
    x:
        Inputs of shape ``(N, ...)``.
    expected:
        The model's input shape including the batch axis, ``None`` for free
        dimensions (Keras' ``model.input_shape``, e.g. ``(None, 8, 8, 1)``).
    path:
        The held-out file, named in errors.

    Returns
    -------
    numpy.ndarray
        ``x`` itself when ``x.shape[1:]`` fits ``expected[1:]`` (``None``
        matches any size), or a view of shape ``x.shape + (1,)`` when the model
        expects exactly one more trailing axis of size 1 and the other axes fit
        (``(N, 8, 8)`` data for a ``(None, 8, 8, 1)`` model). No other
        reshaping (flattening, transposing) is ever done.

    Raises
    ------
    DataError
        When the shapes do not fit; the message names the data file, the
        model's expected shape and the received shape.
    """
    want = tuple(expected)[1:]
    got = tuple(int(d) for d in x.shape[1:])

    def fits(shape: tuple[int, ...]) -> bool:
        return len(shape) == len(want) and all(w is None or w == g for w, g in zip(want, shape))

    if fits(got):
        return x
    if len(want) == len(got) + 1 and want[-1] == 1 and fits(got + (1,)):
        return x[..., np.newaxis]
    show_want = "(N, " + ", ".join("?" if w is None else str(w) for w in want) + ")"
    raise DataError(
        f"held-out inputs do not fit the model: the model expects inputs of shape {show_want}; "
        f"received x of shape {tuple(x.shape)}",
        path,
    )
