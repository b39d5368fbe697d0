"""What pruning bought: sparsity, parameters structured pruning could remove, compressed size.

:func:`savings` compares two states of one model (``before`` and ``after``,
each the tensors that differ from the stored file, as
:meth:`~weightlab.core.session.EditSession.edited_arrays` gives them) and
reports:

Sparsity
    The fraction of entries that are exactly zero (``-0.0`` counts, NaN does
    not), per layer and overall, over all of a layer's tensors and over its
    *kernels* alone (the tensors whose weight name ends with ``kernel``:
    ``kernel``, ``depthwise_kernel``, ``pointwise_kernel``,
    ``recurrent_kernel``).
Parameters removable by structured pruning
    Output neurons or filters that are *dead*, whose whole kernel slice
    ``kernel[..., j]`` and bias entry ``bias[j]`` are zero, and that a
    structured pruner could delete without changing a single output: the
    kernel slice, the bias entry and the matching input slice
    ``next_kernel[..., j, :]`` of the layer that reads them. This is counted
    conservatively, only where the stored architecture proves the removal
    exact:

    * the layer and its reader are ``Dense``, ``Conv1D``, ``Conv2D`` or
      ``Conv3D`` with ``groups`` 1 (depthwise, separable and transposed
      convolutions, whose kernels are laid out differently, are skipped);
    * the layer's activation maps 0 to 0 (``relu``, ``linear``, ``tanh``,
      ``elu``, ``selu``...; a ``sigmoid`` neuron outputs 0.5 and would have
      to be folded into the next bias);
    * between the two, every layer keeps a zero channel zero channel by
      channel and has exactly one reader (dropout, ReLU-like activations,
      max/average pooling, global pooling, zero padding); a
      ``BatchNormalization``, a ``Flatten``, a merge (``Add``,
      ``Concatenate``...) or a branch ends the search, and nothing is counted;
    * the reader's kernel has as many inputs (``shape[-2]``) as the layer
      has outputs.

    The model's last layer (no reader) keeps its outputs. An entry of a
    reader's kernel that is both in a dead input row and a dead output column
    counts once. A model without a stored architecture counts nothing.
Compressed size
    The model saved with WeightLab's own writer (the ``saver`` argument:
    :func:`weightlab.formats.save_model`) into a private temporary folder,
    then compressed into a ZIP archive with ``ZIP_DEFLATED`` exactly as
    TensorFlow Model Optimization's pruning guide measures it
    (``get_gzipped_model_size``): the archive's size in bytes
    (:func:`gzip_size`). The folder is removed afterwards; nothing is
    written beside the user's file.
"""

from __future__ import annotations

import math
import os
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import remove_tree
from .graph import _ZERO_PRESERVING_ACTIVATIONS, _preserves_zero, consumers
from .model import ModelFile, TensorInfo

__all__ = ["LayerSavings", "Savings", "savings", "gzip_size", "removable_parameters"]

#: Writes ``model`` with the given changed tensors to a new path (as :data:`weightlab.core.session.SaveFunction`).
Saver = Callable[[ModelFile, Mapping[str, np.ndarray], Path], None]

#: Layers whose output neurons / input rows structured pruning removes here (kernel ``(..., in, out)``).
_PRUNABLE = frozenset({"Dense", "Conv1D", "Conv2D", "Conv3D"})
#: Channel-wise layers that keep a zero channel zero, besides :data:`weightlab.core.graph.ZERO_PRESERVING`.
_ALSO_ZERO_PRESERVING = frozenset(
    {
        "GlobalAveragePooling1D",
        "GlobalAveragePooling2D",
        "GlobalAveragePooling3D",
        "GlobalMaxPooling1D",
        "GlobalMaxPooling2D",
        "GlobalMaxPooling3D",
    }
)


@dataclass(frozen=True)
class LayerSavings:
    """One layer's figures (counts of entries).

    Attributes
    ----------
    layer:
        The layer's name.
    params, kernel_params:
        Entries of all its tensors, and of its kernels.
    zeros_before, zeros_after:
        Exact zeros among all its tensors' entries.
    kernel_zeros_before, kernel_zeros_after:
        Exact zeros among its kernels' entries.
    removable_before, removable_after:
        Entries of its tensors structured pruning could remove (see the module
        docstring): dead output neurons' kernel slices and biases, and the
        input rows that read dead neurons of the layer before it.
    """

    layer: str
    params: int
    kernel_params: int
    zeros_before: int
    zeros_after: int
    kernel_zeros_before: int
    kernel_zeros_after: int
    removable_before: int = 0
    removable_after: int = 0

    @property
    def sparsity_before(self) -> float:
        """Fraction of zeros among all entries before (0.0 for a layer without weights)."""
        return _frac(self.zeros_before, self.params)

    @property
    def sparsity_after(self) -> float:
        """Fraction of zeros among all entries after."""
        return _frac(self.zeros_after, self.params)

    @property
    def kernel_sparsity_before(self) -> float:
        """Fraction of zeros among kernel entries before."""
        return _frac(self.kernel_zeros_before, self.kernel_params)

    @property
    def kernel_sparsity_after(self) -> float:
        """Fraction of zeros among kernel entries after."""
        return _frac(self.kernel_zeros_after, self.kernel_params)


def _frac(n: int, d: int) -> float:
    return n / d if d else 0.0


@dataclass(frozen=True)
class Savings:
    """What changed between two states of a model (see the module docstring).

    Attributes
    ----------
    layers:
        Per layer with weights, in model order.
    gzip_before, gzip_after:
        Bytes of the saved file compressed as TF Model Optimization's guide
        does; None when no saver was given.
    """

    layers: tuple[LayerSavings, ...]
    gzip_before: int | None = None
    gzip_after: int | None = None

    def _sum(self, attr: str) -> int:
        return sum(getattr(layer, attr) for layer in self.layers)

    @property
    def params(self) -> int:
        """Entries of all tensors."""
        return self._sum("params")

    @property
    def kernel_params(self) -> int:
        """Entries of all kernels."""
        return self._sum("kernel_params")

    @property
    def sparsity_before(self) -> float:
        """Fraction of zeros among all entries before."""
        return _frac(self._sum("zeros_before"), self.params)

    @property
    def sparsity_after(self) -> float:
        """Fraction of zeros among all entries after."""
        return _frac(self._sum("zeros_after"), self.params)

    @property
    def kernel_sparsity_before(self) -> float:
        """Fraction of zeros among kernel entries before."""
        return _frac(self._sum("kernel_zeros_before"), self.kernel_params)

    @property
    def kernel_sparsity_after(self) -> float:
        """Fraction of zeros among kernel entries after."""
        return _frac(self._sum("kernel_zeros_after"), self.kernel_params)

    @property
    def removable_before(self) -> int:
        """Entries structured pruning could remove before."""
        return self._sum("removable_before")

    @property
    def removable_after(self) -> int:
        """Entries structured pruning could remove after."""
        return self._sum("removable_after")

    @property
    def gzip_ratio(self) -> float | None:
        """``gzip_before / gzip_after`` (how many times smaller), or None."""
        if not self.gzip_before or not self.gzip_after:
            return None
        return self.gzip_before / self.gzip_after

    def to_json(self) -> dict[str, Any]:
        """JSON values: per-layer counts and sparsities, totals, compressed sizes.

        Returns
        -------
        dict
            ``{"layers": [{"layer", "params", "kernel_params", "zeros_before", ...,
            "sparsity_before", "sparsity_after", "kernel_sparsity_before",
            "kernel_sparsity_after"}, ...], "overall": {...the same totals...},
            "gzip_bytes": {"before", "after", "ratio"}}``.
        """

        def with_fractions(d: dict[str, Any], obj: Any) -> dict[str, Any]:
            for k in ("sparsity_before", "sparsity_after", "kernel_sparsity_before", "kernel_sparsity_after"):
                d[k] = getattr(obj, k)
            return d

        overall = {
            "params": self.params,
            "kernel_params": self.kernel_params,
            **{
                k: self._sum(k)
                for k in (
                    "zeros_before",
                    "zeros_after",
                    "kernel_zeros_before",
                    "kernel_zeros_after",
                    "removable_before",
                    "removable_after",
                )
            },
        }
        return {
            "layers": [with_fractions(asdict(layer), layer) for layer in self.layers],
            "overall": with_fractions(overall, self),
            "gzip_bytes": {"before": self.gzip_before, "after": self.gzip_after, "ratio": self.gzip_ratio},
        }

    def table(self) -> str:
        """The figures as a plain-text table, one row per layer and a total row."""
        head = ("layer", "params", "sparsity", "kernel sparsity", "removable")
        rows = [
            (
                layer.layer,
                f"{layer.params:,}",
                f"{100 * layer.sparsity_before:.1f} % -> {100 * layer.sparsity_after:.1f} %",
                f"{100 * layer.kernel_sparsity_before:.1f} % -> {100 * layer.kernel_sparsity_after:.1f} %",
                f"{layer.removable_before:,} -> {layer.removable_after:,}",
            )
            for layer in self.layers
        ]
        rows.append(
            (
                "total",
                f"{self.params:,}",
                f"{100 * self.sparsity_before:.1f} % -> {100 * self.sparsity_after:.1f} %",
                f"{100 * self.kernel_sparsity_before:.1f} % -> {100 * self.kernel_sparsity_after:.1f} %",
                f"{self.removable_before:,} -> {self.removable_after:,}",
            )
        )
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

        def line(r: tuple[str, ...]) -> str:
            return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()

        out = [line(head), line(tuple("-" * w for w in widths)), *map(line, rows)]
        if self.gzip_before is not None and self.gzip_after is not None:
            ratio = self.gzip_ratio
            out.append(
                f"gzip-compressed file: {self.gzip_before:,} -> {self.gzip_after:,} bytes"
                + (f" ({ratio:.2f}x smaller)" if ratio and ratio >= 1 else "")
                + (f" ({1 / ratio:.2f}x larger)" if ratio and ratio < 1 else "")
            )
        return "\n".join(out)


# -- counting ----------------------------------------------------------------------------


def _zeros(a: np.ndarray) -> int:
    """Exact zeros of ``a`` (``-0.0`` is zero, NaN is not); no temporary the size of ``a``."""
    return int(a.size - np.count_nonzero(a))


def _is_kernel(weight: str) -> bool:
    return weight.endswith("kernel")


def _value(model: ModelFile, state: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    a = state.get(name)
    return np.asarray(a) if a is not None else model.read(name)


def _links(model: ModelFile) -> dict[str, str]:
    """``{layer: the layer that reads its outputs}`` where a dead output neuron is removable (module docstring)."""
    graph, entries = consumers(model.config)
    out: dict[str, str] = {}
    for name, entry in entries.items():
        if not _prunable(model, name, entry):
            continue
        act = (entry.get("config") or {}).get("activation")
        if not (act is None or (isinstance(act, str) and act in _ZERO_PRESERVING_ACTIVATIONS)):
            continue
        current = name
        for _ in range(len(entries) + 1):
            nxt = graph.get(current, [])
            if len(nxt) != 1:
                break
            reader = entries[nxt[0]]
            if _prunable(model, nxt[0], reader):
                k_out, k_in = _kernel(model, name).shape, _kernel(model, nxt[0]).shape
                if len(k_in) >= 2 and k_in[-2] == k_out[-1]:
                    out[name] = nxt[0]
                break
            if not (_preserves_zero(reader) or reader.get("class_name") in _ALSO_ZERO_PRESERVING):
                break
            current = nxt[0]
    return out


def _kernel(model: ModelFile, layer: str) -> TensorInfo:
    kernel = model.layer(layer).tensor("kernel")
    assert kernel is not None  # _prunable checked it
    return kernel


def _prunable(model: ModelFile, name: str, entry: Mapping[str, Any]) -> bool:
    if entry.get("class_name") not in _PRUNABLE or not model.has_layer(name):
        return False
    kernel = model.layer(name).tensor("kernel")
    if kernel is None or len(kernel.shape) < 2:
        return False
    groups = (entry.get("config") or {}).get("groups", 1)
    return groups in (1, None)


def _dead(model: ModelFile, state: Mapping[str, np.ndarray], layer: str) -> np.ndarray:
    """Boolean mask of ``layer``'s output neurons whose kernel slice and bias are all zero."""
    kernel = _value(model, state, _kernel(model, layer).name)
    dead = np.count_nonzero(kernel.reshape(-1, kernel.shape[-1]), axis=0) == 0
    bias_info = model.layer(layer).tensor("bias")
    if bias_info is not None:
        dead &= _value(model, state, bias_info.name).reshape(-1) == 0
    return dead


def removable_parameters(model: ModelFile, state: Mapping[str, np.ndarray] | None = None) -> dict[str, int]:
    """Entries structured pruning could remove without changing any output, per layer.

    Parameters
    ----------
    model:
        The model; its stored architecture (``model.config``) decides which
        layers read which (see the module docstring for the exact rule).
    state:
        ``{canonical name: array}`` for the tensors that differ from the
        stored values (None: the stored values).

    Returns
    -------
    dict
        ``{layer: removable entries}`` for the layers with any (kernel
        slices, bias entries and the next layer's input rows; an entry is
        counted once).
    """
    state = state or {}
    links = _links(model)
    dead = {layer: _dead(model, state, layer) for layer in links}
    out: dict[str, int] = {}
    for layer, reader in links.items():
        d = int(dead[layer].sum())
        if not d:
            continue
        shape = _kernel(model, layer).shape
        has_bias = model.layer(layer).tensor("bias") is not None
        out[layer] = out.get(layer, 0) + d * (math.prod(shape[:-1]) + int(has_bias))
        # The reader's input rows of the dead neurons, less the entries also in its own dead columns.
        rshape = _kernel(model, reader).shape
        reader_dead = int(dead[reader].sum()) if reader in dead else 0
        rows = math.prod(rshape[:-2]) * d * (rshape[-1] - reader_dead)
        out[reader] = out.get(reader, 0) + rows
    return {k: v for k, v in out.items() if v}


# -- compressed size ---------------------------------------------------------------------


def gzip_size(path: str | os.PathLike[str]) -> int:
    """Bytes of ``path`` compressed into a ZIP archive with ``ZIP_DEFLATED``.

    As TensorFlow Model Optimization's pruning guide measures a model
    (``get_gzipped_model_size``): a file is written into the archive as it
    is, a folder (a SavedModel) file by file; the archive is made in a
    private temporary folder, measured and removed.

    Raises
    ------
    OSError
        When ``path`` cannot be read.
    """
    p = Path(path)
    folder = tempfile.mkdtemp(prefix="weightlab-gzip-")
    try:
        archive = Path(folder) / "model.zip"
        with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            if p.is_dir():
                for root, dirs, files in os.walk(p, followlinks=False):
                    dirs.sort()
                    for name in sorted(files):
                        full = Path(root, name)
                        if full.is_file() and not full.is_symlink():
                            zf.write(full, full.relative_to(p.parent).as_posix())
            else:
                zf.write(p, p.name)
        return archive.stat().st_size
    finally:
        remove_tree(folder)


def _saved_gzip_size(model: ModelFile, state: Mapping[str, np.ndarray], saver: Saver) -> int:
    folder = tempfile.mkdtemp(prefix="weightlab-savings-")
    try:
        out = Path(folder) / model.path.name
        saver(model, dict(state), out)
        return gzip_size(out)
    finally:
        remove_tree(folder)


# -- the report ------------------------------------------------------------------------


def savings(
    model: ModelFile,
    before: Mapping[str, np.ndarray] | None,
    after: Mapping[str, np.ndarray] | None,
    *,
    saver: Saver | None = None,
) -> Savings:
    """Compare two states of ``model``: sparsity, removable parameters, compressed size.

    Parameters
    ----------
    model:
        The opened model.
    before, after:
        ``{canonical name: array}`` of the tensors that differ from the
        stored values in each state (:meth:`EditSession.edited_arrays
        <weightlab.core.session.EditSession.edited_arrays>`; None or ``{}``:
        the stored values). Arrays have the tensor's shape; any numeric dtype.
    saver:
        Writes the model with changed tensors (:func:`weightlab.formats.save_model`);
        with one, both states are saved into a private temporary folder and
        their ZIP_DEFLATED sizes measured (:func:`gzip_size`). Without one,
        ``gzip_before`` and ``gzip_after`` are None.

    Returns
    -------
    Savings
        Per layer with weights, in model order, and totals.

    Raises
    ------
    WeightLabError
        When a name in ``before`` or ``after`` is not a tensor of the model,
        or the saver cannot write the model.
    ValueError
        When an array's shape differs from its tensor's.
    """
    before, after = dict(before or {}), dict(after or {})
    for state in (before, after):
        for name, a in state.items():
            info = model.tensor(name)  # raises for an unknown name
            if tuple(np.shape(a)) != tuple(info.shape):
                raise ValueError(f"{name}: shape {tuple(np.shape(a))} differs from the tensor's {tuple(info.shape)}")
    rem_before = removable_parameters(model, before)
    rem_after = removable_parameters(model, after)
    rows = []
    for layer in model.layers:
        if not layer.tensors:
            continue
        counts = dict.fromkeys(("p", "kp", "zb", "za", "kzb", "kza"), 0)
        for t in layer.tensors:
            if t.name in before or t.name in after:
                zb, za = _zeros(_value(model, before, t.name)), _zeros(_value(model, after, t.name))
            else:
                zb = za = _zeros(model.read(t.name))
            counts["p"] += t.size
            counts["zb"] += zb
            counts["za"] += za
            if _is_kernel(t.weight):
                counts["kp"] += t.size
                counts["kzb"] += zb
                counts["kza"] += za
        rows.append(
            LayerSavings(
                layer.name,
                counts["p"],
                counts["kp"],
                counts["zb"],
                counts["za"],
                counts["kzb"],
                counts["kza"],
                rem_before.get(layer.name, 0),
                rem_after.get(layer.name, 0),
            )
        )
    gz_before = gz_after = None
    if saver is not None:
        gz_before = _saved_gzip_size(model, before, saver)
        gz_after = _saved_gzip_size(model, after, saver)
    return Savings(tuple(rows), gz_before, gz_after)
