"""Layer connectivity read from a model's stored Keras config (no model code runs).

Keras serialises a Sequential model as an ordered ``layers`` list and a
functional model as layers with ``inbound_nodes``: Keras 3 writes
``{"args": [{"class_name": "__keras_tensor__", "config": {"keras_history":
[layer, node, tensor]}}]}``, Keras 2 writes ``[[[layer, node, tensor, {}]]]``.
Both are understood here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .model import ModelFile

#: Layers that map a zero channel to a zero channel, channel by channel, at
#: inference; an ablated filter stays zero through them.
ZERO_PRESERVING = {
    "Dropout",
    "SpatialDropout1D",
    "SpatialDropout2D",
    "SpatialDropout3D",
    "ReLU",
    "LeakyReLU",
    "ELU",
    "MaxPooling1D",
    "MaxPooling2D",
    "MaxPooling3D",
    "AveragePooling1D",
    "AveragePooling2D",
    "AveragePooling3D",
    "ZeroPadding1D",
    "ZeroPadding2D",
    "ZeroPadding3D",
    "Activation",
}
_ZERO_PRESERVING_ACTIVATIONS = {"relu", "linear", "tanh", "elu", "selu", "leaky_relu", "relu6", None}


def _layer_entries(config: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Flatten the layer entries of a (possibly nested) model config, in order."""
    if not isinstance(config, dict):
        return []
    inner = config.get("config", config)
    layers = inner.get("layers") if isinstance(inner, dict) else None
    if not isinstance(layers, list):
        return []
    out: list[dict[str, Any]] = []
    for entry in layers:
        if not isinstance(entry, dict):
            continue
        sub = entry.get("config")
        if isinstance(sub, dict) and isinstance(sub.get("layers"), list):
            out.extend(_layer_entries(entry))
        else:
            out.append(entry)
    return out


def _history_names(node: Any) -> Iterator[str]:
    """Layer names referenced by an inbound-node structure (Keras 2 or 3)."""
    if isinstance(node, dict):
        hist = node.get("keras_history")
        if isinstance(hist, list) and hist and isinstance(hist[0], str):
            yield hist[0]
            return
        for v in node.values():
            yield from _history_names(v)
    elif isinstance(node, list):
        if len(node) >= 3 and isinstance(node[0], str) and isinstance(node[1], int):
            yield node[0]  # Keras 2: [layer, node_index, tensor_index, kwargs]
            return
        for v in node:
            yield from _history_names(v)


def consumers(config: dict[str, Any] | None) -> tuple[dict[str, list[str]], dict[str, dict[str, Any]]]:
    """Return ``({layer: [layers fed by it]}, {layer: its config entry})``.

    Sequential models (no ``inbound_nodes``) are a chain in list order.
    """
    entries = _layer_entries(config)
    by_name = {}
    for e in entries:
        name = (e.get("config") or {}).get("name") or e.get("name")
        if isinstance(name, str):
            by_name[name] = e
    out: dict[str, list[str]] = {n: [] for n in by_name}
    chained = not any(e.get("inbound_nodes") for e in entries)
    names = list(by_name)
    if chained:
        for a, b in zip(names, names[1:]):
            out[a].append(b)
        return out, by_name
    for name, e in by_name.items():
        for src in dict.fromkeys(_history_names(e.get("inbound_nodes", []))):
            if src in out and name not in out[src]:
                out[src].append(name)
    return out, by_name


def _preserves_zero(entry: dict[str, Any]) -> bool:
    cls = entry.get("class_name")
    if cls not in ZERO_PRESERVING:
        return False
    if cls == "Activation":
        act = (entry.get("config") or {}).get("activation")
        return act in _ZERO_PRESERVING_ACTIVATIONS
    return True


def following_batchnorm(model: ModelFile, layer: str) -> str | None:
    """Name of the BatchNormalization layer that normalises ``layer``'s output channels.

    Follows the single consumer of ``layer`` through layers that keep a zero
    channel zero (dropout, ReLU, pooling, padding); returns None when the
    model's config is not stored, the path branches, or no BatchNormalization
    over the last axis comes next.
    """
    graph, entries = consumers(model.config)
    current = layer
    for _ in range(len(graph) + 1):
        nxt = graph.get(current, [])
        if len(nxt) != 1:
            return None
        entry = entries[nxt[0]]
        if entry.get("class_name") == "BatchNormalization":
            axis = (entry.get("config") or {}).get("axis", -1)
            if isinstance(axis, list):
                axis = axis[0] if len(axis) == 1 else None
            rank = len(model.tensor(f"{layer}/kernel").shape) if f"{layer}/kernel" in model else 0
            return nxt[0] if axis in (-1, rank - 1) else None
        if not _preserves_zero(entry):
            return None
        current = nxt[0]
    return None
