"""The Keras 3 weights store (``model.weights.h5`` in ``.keras``, ``*.weights.h5``).

Layout written by Keras 3 (``saving_lib``), checked against Keras 3.15::

    layers/<snake_class>[_N]/vars/0, 1, ...        one group per layer of ``model.layers``
                                                   (snake_case of the class, deduplicated
                                                   with _1, _2 in order); ``vars`` has
                                                   attr ``name`` = the layer's own name
    layers/lstm/cell/vars/0..2                     sub-objects (an RNN's cell) below
    layers/sequential/layers/dense/vars/...        nested models: their own ``layers``
    optimizer/vars/...                             optimizer state (not model tensors)
    vars                                           the model's own variables

Variables are stored by index only; their Keras names come from the layer class
(:data:`WEIGHT_NAMES`) and its config, or from shapes when no config exists.
"""

from __future__ import annotations

import os
import re
from typing import Any

import h5py

from ..core.model import LayerInfo
from . import h5safe
from ._h5io import attr_str, config_layers, layer_config, tensor_info

_CONV = ["Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose", "Dense"]
_RNN = ["LSTM", "GRU", "SimpleRNN", "LSTMCell", "GRUCell", "SimpleRNNCell"]
_SEPARABLE = ["SeparableConv1D", "SeparableConv2D"]

#: Weight names by class, in storage order, and the config flag that drops each
#: (``None``: always present). Verified against ``layer.weights`` in the tests.
WEIGHT_NAMES: dict[str, list[tuple[str, str | None]]] = {
    **{c: [("kernel", None), ("bias", "use_bias")] for c in _CONV},
    "DepthwiseConv1D": [("kernel", None), ("bias", "use_bias")],
    "DepthwiseConv2D": [("kernel", None), ("bias", "use_bias")],
    **{c: [("depthwise_kernel", None), ("pointwise_kernel", None), ("bias", "use_bias")] for c in _SEPARABLE},
    "EinsumDense": [("kernel", None), ("bias", "bias_axes")],
    "BatchNormalization": [
        ("gamma", "scale"),
        ("beta", "center"),
        ("moving_mean", None),
        ("moving_variance", None),
    ],
    "LayerNormalization": [("gamma", "scale"), ("beta", "center")],
    "Embedding": [("embeddings", None)],
    **{c: [("kernel", None), ("recurrent_kernel", None), ("bias", "use_bias")] for c in _RNN},
}
_NON_TRAINABLE = {"moving_mean", "moving_variance"}
_MODEL_CLASSES = {"Sequential", "Functional", "Model"}


def to_snake_case(name: str) -> str:
    """Keras' ``naming.to_snake_case``: ``DepthwiseConv2D`` -> ``depthwise_conv2d``."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def weight_names(class_name: str, config: dict[str, Any], count: int) -> list[str]:
    """Keras weight names of the ``count`` variables of a layer, in storage order.

    Falls back to ``var_0``, ``var_1``... when the class is unknown or the
    variable count does not match what the class and config imply.
    """
    spec = WEIGHT_NAMES.get(class_name)
    if spec is not None:
        names = [n for n, flag in spec if flag is None or config.get(flag, True)]
        if len(names) == count:
            return names
    return [f"var_{i}" for i in range(count)]


def infer_weight_names(shapes: list[tuple[int, ...]]) -> list[str]:
    """Weight names guessed from shapes alone (no config), only where unambiguous.

    ``(..., n), (n,)`` -> kernel, bias; four equal
    1-D vectors -> gamma, beta, moving_mean, moving_variance; else ``var_N``.
    """
    if len(shapes) == 2 and len(shapes[0]) >= 2 and shapes[1] == (shapes[0][-1],):
        return ["kernel", "bias"]
    if len(shapes) == 4 and len(shapes[0]) == 1 and all(s == shapes[0] for s in shapes):
        return ["gamma", "beta", "moving_mean", "moving_variance"]
    return [f"var_{i}" for i in range(len(shapes))]


def layer_datasets(group: h5py.Group, path: str | os.PathLike[str]) -> list[h5py.Dataset]:
    """All variables of one layer group in storage order.

    Own ``vars/0, 1, ...`` first (numeric order), then sub-objects' variables
    (an RNN's ``cell``) in name order. Nested ``layers`` groups are not
    included (nested models are flattened by the caller).
    """
    out: list[h5py.Dataset] = []
    members = dict(h5safe.members(group, path))
    vars_group = members.pop("vars", None)
    if isinstance(vars_group, h5py.Group):
        items = h5safe.members(vars_group, path)
        items.sort(key=lambda kv: (not kv[0].isdigit(), int(kv[0]) if kv[0].isdigit() else 0, kv[0]))
        out += [obj for _, obj in items if isinstance(obj, h5py.Dataset)]
    for name in sorted(members):
        obj = members[name]
        if name != "layers" and isinstance(obj, h5py.Group):
            out += layer_datasets(obj, path)
    return out


def _layer_name(group: h5py.Group, path: str | os.PathLike[str]) -> str | None:
    """The layer's own name from the ``name`` attribute of its ``vars`` group, if any."""
    if "vars" not in group:
        return None
    v = h5safe.child(group, "vars", path)
    return attr_str(v, "name") if isinstance(v, h5py.Group) else None


def layers_from_config(
    root: h5py.Group,
    model_config: dict[str, Any],
    file_size: int,
    path: str | os.PathLike[str],
) -> list[LayerInfo]:
    """Layers of a Keras 3 model in ``model.layers`` order, nested models flattened.

    Parameters
    ----------
    root:
        Root of the weights store.
    model_config:
        The model entry of ``config.json`` (``{"class_name": ..., "config": {...}}``),
        checked with :func:`~weightlab.formats._h5io.check_model_config`.
    file_size:
        Size of the HDF5 data in bytes (for safety checks).
    path:
        The file, for error messages.

    Returns
    -------
    list of LayerInfo
        Layers without weights included (no tensors); a Sequential's InputLayer
        is left out, as ``model.layers`` does.
    """
    out: list[LayerInfo] = []
    _walk_container(root, model_config, file_size, path, out)
    own = h5safe.child(root, "vars", path) if "vars" in root else None
    if isinstance(own, h5py.Group):  # a subclassed model's own variables
        dsets = [o for _, o in h5safe.members(own, path) if isinstance(o, h5py.Dataset)]
        if dsets:
            name = layer_config(model_config).get("name") or "model"
            tensors = [tensor_info(name, f"var_{i}", ds, file_size, path) for i, ds in enumerate(dsets)]
            out.append(LayerInfo(name, model_config.get("class_name", ""), tensors))
    return out


def _walk_container(
    group: h5py.Group, cfg: dict[str, Any], file_size: int, path: str | os.PathLike[str], out: list[LayerInfo]
) -> None:
    sequential = cfg.get("class_name") == "Sequential"
    layer_cfgs = [
        lc for lc in config_layers(cfg) if not (sequential and lc.get("class_name") == "InputLayer")
    ]
    container = h5safe.child(group, "layers", path) if "layers" in group else None
    children = dict(h5safe.members(container, path)) if isinstance(container, h5py.Group) else {}
    by_name = {n: g for g in children.values() if isinstance(g, h5py.Group) and (n := _layer_name(g, path))}
    used: dict[str, int] = {}
    for lc in layer_cfgs:
        cls = lc.get("class_name", "")
        cfg_l = layer_config(lc)
        lname = cfg_l.get("name", "")
        snake = to_snake_case(cls)
        used[snake] = used.get(snake, -1) + 1
        gname = snake if used[snake] == 0 else f"{snake}_{used[snake]}"
        sub = by_name.get(lname) or children.get(gname)
        if cls in _MODEL_CLASSES and isinstance(cfg_l.get("layers"), list):
            if isinstance(sub, h5py.Group):
                _walk_container(sub, lc, file_size, path, out)
            continue
        dsets = layer_datasets(sub, path) if isinstance(sub, h5py.Group) else []
        names = weight_names(cls, cfg_l, len(dsets))
        trainable = bool(cfg_l.get("trainable", True))
        tensors = [
            tensor_info(lname, w, ds, file_size, path, trainable and w not in _NON_TRAINABLE)
            for w, ds in zip(names, dsets)
        ]
        out.append(LayerInfo(lname, cls, tensors))


def layers_without_config(root: h5py.Group, file_size: int, path: str | os.PathLike[str]) -> list[LayerInfo]:
    """Layers of a Keras 3 weights store read without a config (``*.weights.h5``).

    Layer names come from each ``vars`` group's ``name`` attribute (else the
    group name); class names are unknown (``""``); weight names are inferred
    from shapes by :func:`infer_weight_names`. The file does not record the
    model's layer order: layers are sorted by the file position of their first
    variable (creation order), layers without variables by their group's.
    """
    found: list[tuple[int, LayerInfo]] = []

    def walk(container: h5py.Group) -> None:
        for gname, g in h5safe.members(container, path):
            if not isinstance(g, h5py.Group):
                continue
            if "layers" in g:
                walk(h5safe.child(g, "layers", path))
            dsets = layer_datasets(g, path)
            if "layers" in g and not dsets:
                continue  # a nested model: its layers were listed above
            lname = _layer_name(g, path) or gname
            names = infer_weight_names([tuple(d.shape or ()) for d in dsets])
            tensors = [
                tensor_info(lname, w, ds, file_size, path, w not in _NON_TRAINABLE)
                for w, ds in zip(names, dsets)
            ]
            anchor = dsets[0] if dsets else (g["vars"] if "vars" in g else g)
            found.append((_address(anchor), LayerInfo(lname, "", tensors)))

    if "layers" in root:
        walk(h5safe.child(root, "layers", path))
    found.sort(key=lambda item: item[0])
    return [layer for _, layer in found]


def _address(obj: h5py.HLObject) -> int:
    """File address of an object's header (grows with creation order in Keras files)."""
    try:
        return int(h5py.h5o.get_info(obj.id).addr)
    except Exception:  # noqa: BLE001 - ordering is best effort
        return 0
