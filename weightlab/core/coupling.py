"""Coupled outputs: layers whose output channels must be edited together, from the stored architecture.

A structural edit (zero or prune output neurons/filters) of one layer is only
what it seems when nothing else carries the same channels. In a residual block
``y = add([conv_b(x), x])`` channel ``j`` of ``y`` is the sum of channel ``j``
of ``conv_b`` and channel ``j`` of the shortcut: zeroing filter ``j`` of
``conv_b`` leaves the shortcut's channel ``j`` flowing, so a sensitivity sweep
of ``conv_b`` alone under-states what removing channel ``j`` costs (the trap:
"no accuracy change, most robust"). This module reads the model's stored
config (no model code runs, :mod:`weightlab.core.graph`) and groups the layers
whose output channels are tied:

* the inputs of one element-wise merge (``Add``, ``Subtract``, ``Multiply``,
  ``Average``, ``Maximum``, ``Minimum``), followed back through layers that map
  channel ``j`` to channel ``j`` (activations, BatchNormalization, dropout,
  pooling, padding...) to the layers with a kernel that produce them; merges
  that feed merges (a residual stream) join one group;
* the inputs of a ``Concatenate`` over the channel axis, each owning a range of
  the concatenated channels;
* a layer and the BatchNormalization that normalises its channels (directly,
  or through zero-preserving layers): the BatchNorm's ``gamma``/``beta`` of
  channel ``j`` belong to filter ``j``.

Each :class:`CoupledGroup` says why (``reason``), which merges tie it, which
BatchNormalization layers normalise its channels after a merge, and which
inputs cannot be edited (``sources``: the model's input, or a layer this
module does not see through), in which case removing a channel of the group
cannot silence it completely.

Examples
--------
>>> groups = coupled_groups(config)           # doctest: +SKIP
>>> [(g.id, g.layers) for g in groups]        # doctest: +SKIP
[('group:add', ('conv_a', 'conv_b')), ...]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from .graph import _ZERO_PRESERVING_ACTIVATIONS, ZERO_PRESERVING, _history_names, _layer_entries, consumers
from .model import ModelFile

__all__ = ["MERGES", "CHANNELWISE", "Member", "CoupledGroup", "coupled_groups", "group_of", "find_group"]

#: Element-wise merges: channel ``j`` of the output depends on channel ``j`` of every input.
MERGES = frozenset({"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"})

#: Layers whose output channel ``j`` depends on input channel ``j`` only (inference), so a
#: coupling is traced through them. LayerNormalization and Softmax mix channels: not here.
CHANNELWISE = frozenset(
    ZERO_PRESERVING
    | {
        "BatchNormalization",
        "PReLU",
        "ThresholdedReLU",
        "GaussianNoise",
        "GaussianDropout",
        "AlphaDropout",
        "ActivityRegularization",
        "Identity",
        "GlobalAveragePooling1D",
        "GlobalAveragePooling2D",
        "GlobalAveragePooling3D",
        "GlobalMaxPooling1D",
        "GlobalMaxPooling2D",
        "GlobalMaxPooling3D",
        "Cropping1D",
        "Cropping2D",
        "Cropping3D",
        "UpSampling1D",
        "UpSampling2D",
        "UpSampling3D",
    }
)

#: Layer classes with a kernel whose last axis is the output channels.
_PRODUCERS = frozenset(
    {
        "Dense",
        "EinsumDense",
        "Conv1D",
        "Conv2D",
        "Conv3D",
        "Conv1DTranspose",
        "Conv2DTranspose",
        "Conv3DTranspose",
        "SeparableConv1D",
        "SeparableConv2D",
        "DepthwiseConv1D",
        "DepthwiseConv2D",
    }
)


#: Longest chain of layers followed back from a merge (Python's recursion stays well below its limit).
_MAX_TRACE = 300


@dataclass(frozen=True)
class Member:
    """A layer with a kernel in a coupled group.

    Attributes
    ----------
    layer:
        The layer's name; its output neurons/filters are the coupled channels.
    start, stop:
        The channels ``start .. stop - 1`` of the group's channel space that
        this layer's output channels ``0 .. stop - start - 1`` occupy (a
        ``Concatenate`` gives each input its own range; ``stop`` is None when
        the width is not known from the stored architecture).
    batchnorm:
        The BatchNormalization layer between this layer and the merge (or the
        one that follows it), whose ``gamma``/``beta`` of a channel belong to
        the channel; None when there is none.
    """

    layer: str
    start: int = 0
    stop: int | None = None
    batchnorm: str | None = None

    def local(self, channels: Iterable[int]) -> tuple[int, ...]:
        """This layer's own channel indices for group channels ``channels`` (those in its range)."""
        stop = self.stop if self.stop is not None else float("inf")
        return tuple(sorted({int(c) - self.start for c in channels if self.start <= int(c) < stop}))


@dataclass(frozen=True)
class CoupledGroup:
    """Layers whose output channels are tied (see the module docstring).

    Attributes
    ----------
    id:
        ``"group:<name>"``, named after the first merge in model order (or
        ``"group:<layer>+<batchnorm>"`` for a layer and its BatchNorm): a
        sweep's target.
    kind:
        ``"merge"`` (element-wise merges, possibly with concatenations inside),
        ``"concat"`` (a ``Concatenate`` alone) or ``"batchnorm"`` (one layer and
        its BatchNormalization).
    members:
        The layers with a kernel, in model order.
    reason:
        One line for a user: why these layers are coupled.
    merges:
        The merge and concatenation layers tying them.
    batchnorms:
        BatchNormalization layers that normalise the coupled channels after a
        merge (they turn a zero channel into ``beta - gamma * mean / sqrt(var +
        eps)``; silence them too for a true removal).
    sources:
        Inputs of the group that are not layers with a kernel (the model's
        input, or a layer whose channel mapping is not known): removing a
        channel of the group leaves their part of it flowing.
    channels:
        Width of the group's channel space; None when unknown.
    """

    id: str
    kind: str
    members: tuple[Member, ...]
    reason: str
    merges: tuple[str, ...] = ()
    batchnorms: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    channels: int | None = None

    @property
    def layers(self) -> tuple[str, ...]:
        """Names of the member layers, in model order."""
        return tuple(m.layer for m in self.members)

    @property
    def complete(self) -> bool:
        """True when every input of the group is an editable layer (``sources`` is empty)."""
        return not self.sources

    def member(self, layer: str) -> Member:
        """The member called ``layer``; KeyError when it is not in the group."""
        for m in self.members:
            if m.layer == layer:
                return m
        raise KeyError(f"{layer!r} is not in {self.id}")

    def to_dict(self) -> dict[str, Any]:
        """JSON values: every field, members as dicts, plus ``layers`` and ``complete``."""
        d = asdict(self)
        d["members"] = [asdict(m) for m in self.members]
        d["layers"] = list(self.layers)
        d["complete"] = self.complete
        return d


@dataclass
class _Trace:
    """What one merge input leads back to."""

    members: list[Member] = field(default_factory=list)
    merges: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)


class _Graph:
    """The stored architecture: layer entries, inputs in order, consumers, widths."""

    def __init__(self, config: Mapping[str, Any] | None, model: ModelFile | None) -> None:
        self.model = model
        self.forward, self.entries = consumers(dict(config) if config is not None else None)
        self.order = list(self.entries)
        chained = not any(e.get("inbound_nodes") for e in _layer_entries(dict(config) if config else None))
        self.inputs: dict[str, list[str]] = {}
        for i, name in enumerate(self.order):
            if chained:
                self.inputs[name] = [self.order[i - 1]] if i else []
            else:
                found = dict.fromkeys(_history_names(self.entries[name].get("inbound_nodes", [])))
                self.inputs[name] = [n for n in found if n in self.entries]
        self._widths: dict[str, int | None] = {}
        self._path: set[str] = set()

    def cls(self, name: str) -> str:
        return str(self.entries[name].get("class_name") or "")

    def cfg(self, name: str) -> dict[str, Any]:
        c = self.entries[name].get("config")
        return c if isinstance(c, dict) else {}

    def is_producer(self, name: str) -> bool:
        if self.cls(name) in _PRODUCERS:
            return True
        if self.model is not None and self.model.has_layer(name):
            return self.model.layer(name).tensor("kernel") is not None
        return False

    def channelwise(self, name: str) -> bool:
        cls = self.cls(name)
        if cls == "Activation":  # applied channel by channel, except a softmax over the channels
            return self.cfg(name).get("activation") not in ("softmax", "log_softmax")
        if cls in ("BatchNormalization",):
            return _last_axis(self.cfg(name).get("axis", -1))
        return cls in CHANNELWISE

    def is_concat(self, name: str) -> bool:
        return self.cls(name) == "Concatenate" and _last_axis(self.cfg(name).get("axis", -1))

    def width(self, name: str, depth: int = 0) -> int | None:
        """Output channels of ``name`` (last axis), or None when unknown."""
        if name in self._widths:
            return self._widths[name]
        self._widths[name] = None  # cycles in a hostile config end here
        out: int | None = None
        cfg = self.cfg(name)
        if self.is_producer(name):
            out = self._producer_width(name, cfg)
        elif self.cls(name) == "InputLayer":
            shape = cfg.get("batch_shape") or cfg.get("batch_input_shape")
            out = shape[-1] if isinstance(shape, list) and shape and isinstance(shape[-1], int) else None
        elif depth < 200 and self.is_concat(name):
            parts = [self.width(i, depth + 1) for i in self.inputs[name]]
            out = sum(p for p in parts if p is not None) if parts and None not in parts else None
        elif depth < 200 and (self.channelwise(name) or self.cls(name) in MERGES) and self.inputs[name]:
            out = self.width(self.inputs[name][0], depth + 1)
        self._widths[name] = out
        return out

    def _producer_width(self, name: str, cfg: dict[str, Any]) -> int | None:
        if self.model is not None and self.model.has_layer(name):
            bias = self.model.layer(name).tensor("bias")
            kernel = self.model.layer(name).tensor("kernel")
            if bias is not None and bias.shape:
                return int(bias.shape[-1])
            if kernel is not None and kernel.shape:
                return int(kernel.shape[-1])
        for key in ("units", "filters"):
            if isinstance(cfg.get(key), int):
                return int(cfg[key])
        return None

    def trace(self, name: str, start: int, seen: set[str], bn: str | None = None) -> _Trace:
        """Follow ``name``'s channels back to the layers that produce them."""
        out = _Trace()
        if name in self._path or len(self._path) > _MAX_TRACE:  # a cycle, or a chain too deep to follow
            out.sources.append(name)
            return out
        if name in seen:  # reached again along another path (a diamond): already traced
            return out
        seen.add(name)
        self._path.add(name)
        try:
            self._trace(name, start, seen, bn, out)
        finally:
            self._path.discard(name)
        return out

    def _trace(self, name: str, start: int, seen: set[str], bn: str | None, out: _Trace) -> None:
        if self.is_producer(name):
            w = self.width(name)
            out.members.append(Member(name, start, None if w is None else start + w, bn))
        elif self.cls(name) in MERGES:
            out.merges.append(name)
            for i in self.inputs[name]:
                _extend(out, self.trace(i, start, seen))
        elif self.is_concat(name):
            out.merges.append(name)
            offset: int | None = start
            for i in self.inputs[name]:
                if offset is None:
                    out.sources.append(i)
                    continue
                _extend(out, self.trace(i, offset, seen))
                w = self.width(i)
                offset = None if w is None else offset + w
        elif self.channelwise(name) and len(self.inputs[name]) == 1:
            here = name if self.cls(name) == "BatchNormalization" and bn is None else bn
            _extend(out, self.trace(self.inputs[name][0], start, seen, here))
        else:
            out.sources.append(name)

    def batchnorm_after(self, name: str) -> str | None:
        """The BatchNormalization reached from ``name`` along single consumers through zero-preserving layers."""
        current = name
        for _ in range(len(self.order) + 1):
            nxt = self.forward.get(current, [])
            if len(nxt) != 1:
                return None
            cls = self.cls(nxt[0])
            if cls == "BatchNormalization":
                return nxt[0] if _last_axis(self.cfg(nxt[0]).get("axis", -1)) else None
            if cls not in ZERO_PRESERVING or (
                cls == "Activation" and self.cfg(nxt[0]).get("activation") not in _ZERO_PRESERVING_ACTIVATIONS
            ):
                return None
            current = nxt[0]
        return None


def _last_axis(axis: Any) -> bool:
    """True for a channels-last axis as Keras stores it (``-1``, ``[-1]``, or 3 for 4-D data)."""
    if isinstance(axis, list):
        axis = axis[0] if len(axis) == 1 else None
    return axis in (-1, 3)


def _extend(into: _Trace, more: _Trace) -> None:
    into.members.extend(more.members)
    into.merges.extend(more.merges)
    into.sources.extend(more.sources)


def coupled_groups(model_or_config: ModelFile | Mapping[str, Any] | None) -> list[CoupledGroup]:
    """Groups of layers whose output channels are coupled, from the stored architecture.

    Parameters
    ----------
    model_or_config:
        An opened :class:`~weightlab.core.model.ModelFile` (its ``config``; its
        tensors give widths and tell layers with a kernel), or a Keras model
        config dict (``{"class_name": "Functional", "config": {"layers": [...]}}``
        or a Sequential's), or None.

    Returns
    -------
    list of CoupledGroup
        Merge and concatenation groups (merges that feed merges joined into
        one: a residual stream is one group), then layer + BatchNormalization
        pairs for layers in no merge group, in model order. Empty when no
        config is stored. Nothing is guessed: a layer this module cannot see
        through is reported in ``sources``.
    """
    if isinstance(model_or_config, ModelFile):
        model: ModelFile | None = model_or_config
        config: Mapping[str, Any] | None = model_or_config.config
    else:
        model, config = None, model_or_config
    g = _Graph(config, model)
    position = {n: i for i, n in enumerate(g.order)}
    # Every merge's inputs, traced; merges reached through another merge are joined with it.
    raw: list[_Trace] = []
    for name in g.order:
        if g.cls(name) in MERGES or g.is_concat(name):
            raw.append(g.trace(name, 0, set()))
    # Union of traces that share a merge or a member layer (a residual stream).
    groups: list[_Trace] = []
    for t in raw:
        keys = set(t.merges) | {m.layer for m in t.members}
        joined = [x for x in groups if keys & (set(x.merges) | {m.layer for m in x.members})]
        merged = _Trace()
        for x in [*joined, t]:
            for m in x.members:
                if m.layer not in {y.layer for y in merged.members}:
                    merged.members.append(m)
            merged.merges.extend(n for n in x.merges if n not in merged.merges)
            merged.sources.extend(n for n in x.sources if n not in merged.sources)
        groups = [x for x in groups if not any(x is j for j in joined)] + [merged]
    out: list[CoupledGroup] = []
    grouped: set[str] = set()
    for t in groups:
        if not t.members and not t.sources:
            continue
        merges = sorted(set(t.merges), key=position.__getitem__)
        members = tuple(sorted(t.members, key=lambda m: position[m.layer]))
        grouped.update(m.layer for m in members)
        concat_only = all(g.is_concat(m) for m in merges)
        last = merges[-1]
        widths = [m.stop for m in members]
        channels = g.width(last) if None not in widths else None
        bns = tuple(dict.fromkeys(b for m in merges if (b := g.batchnorm_after(m)) is not None))
        what = ", ".join(f"{g.cls(m)} {m!r}" for m in merges)
        reason = (
            f"output channels concatenated by {what}" if concat_only else f"output channels tied by {what}"
        )
        if t.sources:
            reason += f"; also fed by {', '.join(repr(s) for s in t.sources)} (not editable here)"
        out.append(
            CoupledGroup(
                id=f"group:{merges[0]}",
                kind="concat" if concat_only else "merge",
                members=members,
                reason=reason,
                merges=tuple(merges),
                batchnorms=bns,
                sources=tuple(t.sources),
                channels=channels,
            )
        )
    for name in g.order:
        if name in grouped or not g.is_producer(name):
            continue
        bn = g.batchnorm_after(name)
        if bn is not None:
            w = g.width(name)
            out.append(
                CoupledGroup(
                    id=f"group:{name}+{bn}",
                    kind="batchnorm",
                    members=(Member(name, 0, w, bn),),
                    reason=f"BatchNormalization {bn!r} normalises the output channels of {name!r}",
                    channels=w,
                )
            )
    out.sort(key=lambda c: position[c.members[0].layer] if c.members else position[c.merges[0]])
    return out


def group_of(layer: str, groups: Iterable[CoupledGroup]) -> CoupledGroup | None:
    """The group that has ``layer`` as a member, or None."""
    for grp in groups:
        if layer in grp.layers:
            return grp
    return None


def find_group(group_id: str, groups: Iterable[CoupledGroup]) -> CoupledGroup:
    """The group called ``group_id`` (``"group:add"``).

    Raises
    ------
    RecipeError
        When no group has that id; the message lists the ids there are.
    """
    from .errors import RecipeError

    groups = list(groups)
    for grp in groups:
        if grp.id == group_id:
            return grp
    known = ", ".join(grp.id for grp in groups) or "none (no merges or BatchNorms in the stored architecture)"
    raise RecipeError(f"no coupled group {group_id!r}; the model's groups: {known}")
