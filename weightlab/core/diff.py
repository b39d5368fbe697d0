"""Differences between weights: an edit against the original, or two files.

Relative change is ``||edited - original||_2 / ||original||_2`` (Frobenius norm
over all entries; ``inf`` when the original is all zero and the edit is not,
0 when both are zero).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomic import atomic_path
from .errors import WeightLabError
from .model import ModelFile


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
    """Boolean mask of entries whose values differ (NaN equal to NaN), shape of ``a``."""
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    return ~((a == b) | (np.isnan(a) & np.isnan(b)))


def tensor_diff(name: str, original: np.ndarray, edited: np.ndarray) -> TensorDiff:
    """Compare ``edited`` against ``original`` (same shape); see :class:`TensorDiff`."""
    mask = changed_mask(original, edited)
    a = original.astype(np.float64, copy=False)
    d = edited.astype(np.float64) - a
    d[~mask] = 0.0
    num = float(np.sqrt(np.dot(d.ravel(), d.ravel())))
    den = float(np.sqrt(np.dot(a.ravel(), a.ravel())))
    rel = num / den if den > 0 else (0.0 if num == 0 else float("inf"))
    return TensorDiff(
        name=name,
        changed=int(mask.sum()),
        size=int(mask.size),
        relative_l2=rel,
        max_abs=float(np.abs(d).max()) if d.size else 0.0,
    )


def difference(original: np.ndarray, edited: np.ndarray) -> np.ndarray:
    """``edited - original`` in float64 (what the diff histogram shows)."""
    return edited.astype(np.float64) - original.astype(np.float64)


def compare_models(
    a: ModelFile,
    b: ModelFile,
    read_a: Callable[[str], np.ndarray] | None = None,
    read_b: Callable[[str], np.ndarray] | None = None,
) -> list[TensorDiff]:
    """Per-tensor change from model ``a`` to model ``b``, largest relative change first.

    Both must have the same tensors (names and shapes), e.g. a model before
    and after fine-tuning.

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
    diffs = [tensor_diff(n, read_a(n), read_b(n)) for n in a.tensors]
    return sorted(diffs, key=lambda d: (-d.relative_l2, d.name))


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
            z = int(a.size - np.count_nonzero(a))
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
