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

The archive is opened with ``allow_pickle=False``: held-out files are untrusted
input like model files, and a pickled (object) array is refused rather than
unpickled.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DataError

__all__ = ["HeldOut", "load_heldout", "conform_inputs"]


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


def _read_array(npz: np.lib.npyio.NpzFile, key: str, path: Path) -> np.ndarray:
    try:
        arr = npz[key]
    except ValueError as exc:
        # numpy refuses object arrays when allow_pickle=False.
        raise DataError(
            f"array {key!r} holds Python objects (pickled data), which WeightLab does not load; "
            "save plain numeric arrays",
            path,
        ) from exc
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"array {key!r} cannot be read ({exc})", path) from exc
    if arr.dtype.hasobject:
        raise DataError(f"array {key!r} holds Python objects (dtype {arr.dtype}); save numeric arrays", path)
    return arr


def load_heldout(path: str | os.PathLike[str]) -> HeldOut:
    """Load a held-out set from an ``.npz`` file with arrays ``x`` and (optionally) ``y``.

    Parameters
    ----------
    path:
        The ``.npz`` file (see the module docstring for the expected arrays).

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
        not an ``.npz`` archive; when ``x`` is missing, or ``y`` is missing
        while other arrays are present (the message lists the keys the file
        has); when an array holds Python objects
        (pickled data is never loaded); when ``x`` is not numeric or not finite
        or has no sample axis; when ``y`` is not of shape ``(N,)`` or
        ``(N, C)``, is not whole numbers, or has negative labels; when ``x`` and
        ``y`` have different lengths; when the set is empty.
    """
    p = Path(path)
    if not p.exists():
        raise DataError("held-out file does not exist", p)
    if not p.is_file():
        raise DataError("held-out path is not a file", p)
    try:
        npz = np.load(p, allow_pickle=False)
    except ValueError as exc:
        # A plain .npy of objects, or a pickle file.
        raise DataError(f"not a NumPy .npz archive with arrays x and y ({exc})", p) from exc
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"not a NumPy .npz archive ({exc})", p) from exc
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise DataError(
            f"not an .npz archive: it holds a single array of shape {getattr(npz, 'shape', '?')}; "
            "save with numpy.savez(path, x=..., y=...)",
            p,
        )
    with npz:
        keys = list(npz.files)
        missing = [k for k in ("x", "y") if k not in keys and not (k == "y" and keys == ["x"])]
        if missing:
            raise DataError(
                f"missing array(s) {', '.join(repr(k) for k in missing)}; the file has {keys or 'no arrays'} "
                "(an unlabelled set holds x alone)",
                p,
            )
        x = _read_array(npz, "x", p)
        y = _read_array(npz, "y", p) if "y" in keys else None

    if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_) or np.iscomplexobj(x):
        raise DataError(f"x must be a real numeric array; received dtype {x.dtype}", p)
    if x.ndim < 2:
        raise DataError(
            f"x must have shape (N, ...) with at least one feature axis; received shape {x.shape}", p
        )
    if y is None:
        if x.shape[0] == 0:
            raise DataError("the held-out set is empty (0 samples)", p)
        _check_finite(x, p)
        return HeldOut(x=x, y=None, num_classes=0, path=p)
    if not (np.issubdtype(y.dtype, np.number) or y.dtype == np.bool_) or np.iscomplexobj(y):
        raise DataError(f"y must be numeric labels; received dtype {y.dtype}", p)

    if y.ndim == 2 and y.shape[1] >= 1:
        num_classes = int(y.shape[1])
        if y.shape[0] and not np.all(np.isfinite(y)):
            raise DataError("y (one-hot / probabilities) contains NaN or infinite values", p)
        labels = np.argmax(y, axis=1).astype(np.int64) if y.shape[0] else np.zeros(0, np.int64)
    elif y.ndim == 1:
        if np.issubdtype(y.dtype, np.floating):
            if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
                raise DataError("y has non-integer labels; class indices must be whole numbers", p)
        labels = y.astype(np.int64)
        num_classes = int(labels.max()) + 1 if labels.size else 0
    else:
        raise DataError(
            f"y must have shape (N,) (class indices) or (N, C) (one-hot); received shape {y.shape}", p
        )

    if x.shape[0] != labels.shape[0]:
        raise DataError(f"x and y differ in length: x has {x.shape[0]} samples, y has {labels.shape[0]}", p)
    if labels.shape[0] == 0:
        raise DataError("the held-out set is empty (0 samples)", p)
    if labels.min() < 0:
        bad = int(np.count_nonzero(labels < 0))
        raise DataError(
            f"y has {bad} negative label(s) (smallest {int(labels.min())}); labels must be >= 0", p
        )
    _check_finite(x, p)
    return HeldOut(x=x, y=labels, num_classes=num_classes, path=p)


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
