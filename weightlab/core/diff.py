"""Differences between weights: an edit against the original, or two files.

Relative change is ``||edited - original||_2 / ||original||_2`` (Frobenius norm
over all entries; ``inf`` when the original is all zero and the edit is not,
0 when both are zero).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

import numpy as np

from .atomic import atomic_path
from .errors import WeightLabError
from .model import ModelFile
from .stats import count_nonzero


@dataclass(frozen=True)
class TensorDiff:
    """How one tensor changed.

    Attributes
    ----------
    name:
        Canonical tensor name.
    changed:
        Number of entries whose value differs (NaN compared by bits).
    size:
        Number of entries.
    relative_l2:
        ``||b - a||_2 / ||a||_2``.
    max_abs:
        ``max |b - a|`` (0.0 for no change).
    """

    name: str
    changed: int
    size: int
    relative_l2: float
    max_abs: float

    @property
    def fraction_changed(self) -> float:
        """``changed / size`` in [0, 1]."""
        return self.changed / self.size if self.size else 0.0


def changed_mask(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Boolean mask of entries whose values differ (NaN equal to NaN), shape of ``a``.

    Filled over blocks of :data:`_BLOCK` entries, so the only full-size array
    is the mask itself.

    Raises
    ------
    ValueError
        When the shapes differ.
    """
    out = np.empty(np.shape(a), dtype=bool)
    flat = out.reshape(-1)
    for i, x, y in _blocks(a, b):
        flat[i : i + x.size] = ~((x == y) | (np.isnan(x) & np.isnan(y)))
    return out


#: Entries per block of the blocked passes below (float64 work arrays of 8 MB).
_BLOCK = 1 << 20


def _blocks(original: np.ndarray, edited: np.ndarray) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """``(offset, a, b)``: flat blocks of :data:`_BLOCK` entries of two same-shape arrays (views, no copies).

    Raises
    ------
    ValueError
        When the shapes differ.
    """
    if np.shape(original) != np.shape(edited):
        raise ValueError(f"shapes differ: {np.shape(original)} vs {np.shape(edited)}")
    fa, fb = np.asarray(original).reshape(-1), np.asarray(edited).reshape(-1)
    for i in range(0, fa.size, _BLOCK):
        yield i, fa[i : i + _BLOCK], fb[i : i + _BLOCK]


def tensor_diff(name: str, original: np.ndarray, edited: np.ndarray) -> TensorDiff:
    """Compare ``edited`` against ``original`` (same shape); see :class:`TensorDiff`.

    Accumulates in float64 over blocks of :data:`_BLOCK` entries, so a
    100M-entry tensor needs no full-size float64 copy.

    Raises
    ------
    ValueError
        When the shapes differ.
    """
    changed, sq_d, sq_a, max_abs = 0, 0.0, 0.0, 0.0
    for _, a, b in _blocks(original, edited):
        mask = changed_mask(a, b)
        a64 = a.astype(np.float64)
        d = b.astype(np.float64) - a64
        d[~mask] = 0.0
        changed += int(np.count_nonzero(mask))
        sq_d += float(np.dot(d, d))
        sq_a += float(np.dot(a64, a64))
        if d.size:
            max_abs = max(max_abs, float(np.abs(d).max()))
    num, den = float(np.sqrt(sq_d)), float(np.sqrt(sq_a))
    rel = num / den if den > 0 else (0.0 if num == 0 else float("inf"))
    return TensorDiff(name=name, changed=changed, size=int(np.size(original)), relative_l2=rel, max_abs=max_abs)


def diff_histogram(original: np.ndarray, edited: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Histogram of ``edited - original`` (float64) over the changed entries with a finite difference.

    Equal to ``np.histogram(d, bins)`` of those differences ``d`` (range: their
    min and max), counted over blocks; None when no entry changed by a finite
    amount.

    Returns
    -------
    (counts, edges) or None
        ``counts`` int64 of length ``bins``, ``edges`` float64 of length ``bins + 1``.
    """
    lo, hi, any_ = np.inf, -np.inf, False
    for _, a, b in _blocks(original, edited):
        d = _changed_differences(a, b)
        if d.size:
            any_ = True
            lo, hi = min(lo, float(d.min())), max(hi, float(d.max()))
    if not any_:
        return None
    counts = np.zeros(bins, dtype=np.int64)
    # The edges np.histogram gives every block (float64 differences, this range).
    edges = np.histogram_bin_edges(np.empty(0, np.float64), bins=bins, range=(lo, hi))
    for _, a, b in _blocks(original, edited):
        c, _ = np.histogram(_changed_differences(a, b), bins=bins, range=(lo, hi))
        counts += c
    return counts, edges


def _changed_differences(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = b.astype(np.float64) - a.astype(np.float64)
    d = d[changed_mask(a, b)]
    return d[np.isfinite(d)]


def difference(original: np.ndarray, edited: np.ndarray) -> np.ndarray:
    """``edited - original`` in float64 (what the diff histogram shows)."""
    return edited.astype(np.float64) - original.astype(np.float64)


def compare_models(
    a: ModelFile,
    b: ModelFile,
    read_a: Callable[[str], np.ndarray] | None = None,
    read_b: Callable[[str], np.ndarray] | None = None,
    progress: Callable[[int, int, str], bool | None] | None = None,
) -> list[TensorDiff] | None:
    """Per-tensor change from model ``a`` to model ``b``, largest relative change first.

    Both must have the same tensors (names and shapes), e.g. a model before
    and after fine-tuning. Tensors are read one at a time (``read_a``,
    ``read_b``; default: the files' readers) and not kept.

    ``progress(done, total, name)`` is called before each tensor; when it
    returns False the comparison stops and None is returned.

    Raises
    ------
    WeightLabError
        When the tensor names or shapes differ; the message lists the first
        differences and names ``b``'s file.
    """
    read_a = read_a or a.read
    read_b = read_b or b.read
    only_a = [n for n in a.tensors if n not in b.tensors]
    only_b = [n for n in b.tensors if n not in a.tensors]
    if only_a or only_b:
        raise WeightLabError(
            f"not the same architecture as {a.path.name}: tensors only in {a.path.name}: "
            f"{only_a[:5]}; only in {b.path.name}: {only_b[:5]}",
            b.path,
        )
    shapes = [(n, a.tensors[n].shape, b.tensors[n].shape) for n in a.tensors if a.tensors[n].shape != b.tensors[n].shape]
    if shapes:
        n, sa, sb = shapes[0]
        raise WeightLabError(f"tensor {n!r} has shape {sb} here but {sa} in {a.path.name}", b.path)
    names = list(a.tensors)
    diffs = []
    for i, n in enumerate(names):
        if progress is not None and progress(i, len(names), n) is False:
            return None
        diffs.append(tensor_diff(n, read_a(n), read_b(n)))
    return sorted(diffs, key=lambda d: (-d.relative_l2, d.name))


class ModelDiff(Sequence[TensorDiff]):
    """Per-tensor change from one model (``a``) to another (``b``): a sequence of :class:`TensorDiff`.

    The order is the order the tensors were compared in (model order for
    :func:`model_diff`). What ``weightlab.compare(a, b)`` and
    ``session.diff()`` return; shown as a table in Jupyter.

    Attributes
    ----------
    a_label, b_label:
        What was compared (a file name, ``"original"``, ``"current"``...).
    """

    def __init__(self, diffs: Iterable[TensorDiff], a_label: str = "a", b_label: str = "b") -> None:
        self._diffs: tuple[TensorDiff, ...] = tuple(diffs)
        self.a_label = str(a_label)
        self.b_label = str(b_label)

    @overload
    def __getitem__(self, index: int) -> TensorDiff: ...

    @overload
    def __getitem__(self, index: slice) -> ModelDiff: ...

    def __getitem__(self, index: int | slice) -> TensorDiff | ModelDiff:
        if isinstance(index, slice):
            return ModelDiff(self._diffs[index], self.a_label, self.b_label)
        return self._diffs[index]

    def __len__(self) -> int:
        return len(self._diffs)

    def __repr__(self) -> str:
        n = sum(1 for d in self._diffs if d.changed)
        return f"<ModelDiff {self.a_label!r} -> {self.b_label!r}: {n} of {len(self._diffs)} tensors changed>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ModelDiff):
            return NotImplemented
        return (self._diffs, self.a_label, self.b_label) == (other._diffs, other.a_label, other.b_label)

    __hash__ = None  # type: ignore[assignment]  # compared by value, like a list

    def names(self) -> list[str]:
        """The tensor names, in this diff's order."""
        return [d.name for d in self._diffs]

    def get(self, name: str) -> TensorDiff | None:
        """The :class:`TensorDiff` of tensor ``name``, or None when it was not compared."""
        return next((d for d in self._diffs if d.name == name), None)

    def changed(self) -> ModelDiff:
        """The tensors with at least one changed entry (same order, same labels)."""
        return ModelDiff((d for d in self._diffs if d.changed), self.a_label, self.b_label)

    def to_dataframe(self) -> Any:
        """One row per tensor: ``name``, ``changed``, ``size``, ``fraction_changed``, ``relative_l2``, ``max_abs``.

        Raises
        ------
        ImportError
            When pandas is not installed.
        """
        import importlib

        pd = importlib.import_module("pandas")
        cols = ["name", "changed", "size", "fraction_changed", "relative_l2", "max_abs"]
        rows = [[d.name, d.changed, d.size, d.fraction_changed, d.relative_l2, d.max_abs] for d in self._diffs]
        return pd.DataFrame(rows, columns=cols)

    def _repr_html_(self) -> str:
        from .richdisplay import diff_html

        return diff_html(self)


def model_diff(
    names: Iterable[str],
    read_a: Callable[[str], np.ndarray],
    read_b: Callable[[str], np.ndarray],
    a_label: str = "a",
    b_label: str = "b",
) -> ModelDiff:
    """Compare tensors ``names`` read from ``a`` and from ``b``, one at a time (see :func:`tensor_diff`).

    When ``read_a(name)`` and ``read_b(name)`` return the very same array
    object (an unedited tensor of a session) the tensor is reported unchanged
    without a pass over it.

    Parameters
    ----------
    names:
        Canonical tensor names, in the order of the result.
    read_a, read_b:
        ``name -> array``; both arrays of one name must have the same shape.
    a_label, b_label:
        What ``a`` and ``b`` are, for display.

    Returns
    -------
    ModelDiff

    Raises
    ------
    WeightLabError
        When a tensor's shapes differ between ``a`` and ``b`` (the message
        names the tensor, both labels and both shapes).
    """
    out = []
    for n in names:
        a, b = read_a(n), read_b(n)
        if a is b:
            out.append(TensorDiff(name=n, changed=0, size=int(np.size(a)), relative_l2=0.0, max_abs=0.0))
            continue
        if np.shape(a) != np.shape(b):
            raise WeightLabError(f"tensor {n!r} has shape {np.shape(a)} in {a_label} but {np.shape(b)} in {b_label}")
        out.append(tensor_diff(n, a, b))
    return ModelDiff(out, a_label, b_label)


def sparsity(model: ModelFile, array: Callable[[str], np.ndarray]) -> dict[str, float]:
    """Fraction of exact zeros per tensor, per layer and for the whole model.

    Returns
    -------
    ``{tensor name: f, layer name: f, "": model f}``; a layer's and the
    model's fractions are weighted by tensor size.
    """
    out: dict[str, float] = {}
    total = zeros_total = 0
    for layer in model.layers:
        lz = ln = 0
        for t in layer.tensors:
            a = array(t.name)
            z = a.size - count_nonzero(a)
            out[t.name] = z / a.size if a.size else 0.0
            lz, ln = lz + z, ln + a.size
        if layer.tensors:
            out.setdefault(layer.name, lz / ln if ln else 0.0)
        zeros_total, total = zeros_total + lz, total + ln
    out[""] = zeros_total / total if total else 0.0
    return out


def export_tensor(array: np.ndarray, path: str | os.PathLike[str]) -> Path:
    """Write a tensor as ``.npy`` (exact, any shape) or ``.csv`` (2-D view), atomically.

    CSV holds the tensor reshaped to ``(prod(shape[:-1]), shape[-1])`` (a
    Dense kernel as its ``(in, out)`` matrix, a conv kernel with one column per
    output filter), values with 9 significant digits (float32 round-trips).

    Raises
    ------
    WeightLabError
        For another extension, or when the file cannot be written.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in (".npy", ".csv"):
        raise WeightLabError("export a tensor as .npy or .csv; got the extension " + repr(p.suffix), p)
    try:
        with atomic_path(p) as tmp:
            if suffix == ".npy":
                with open(tmp, "wb") as fh:
                    np.save(fh, np.asarray(array), allow_pickle=False)
            else:
                a = np.asarray(array)
                matrix = a.reshape(1, -1) if a.ndim < 2 else a.reshape(-1, a.shape[-1])
                with open(tmp, "w", newline="") as fh:
                    w = csv.writer(fh)
                    for row in matrix:
                        w.writerow(f"{v:.9g}" for v in row.tolist())
    except OSError as e:
        raise WeightLabError(f"cannot write: {e.strerror or e}", p) from None
    return p
