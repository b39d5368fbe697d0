"""Where a Keras model can be cut for incremental evaluation (graph analysis, in-process).

A *cut* is a symbolic tensor of the model's functional graph that every path
from the model input to the model output passes through (it *dominates* the
output). The output is then a function of the cut tensor alone, so
activations recorded at a cut on the held-out set can replace every layer
upstream of it: ``keras.Model(inputs=cut, outputs=model.outputs)`` rebuilds
the rest of the model from the existing layers. Inside a residual block
(``Add`` of a shortcut and a branch) no tensor dominates the output; the
nearest cut upstream is the block's input.

Dominators are found in linear time from one topological order of the tensors:
a tensor ``t`` dominates the output iff no edge ``u -> v`` of the graph jumps
over it (``pos(u) < pos(t) < pos(v)``). Proof sketch: a path that avoids ``t``
goes from a position below ``pos(t)`` to one above it, so one of its edges
jumps over ``t``; conversely, for an edge that jumps over ``t``, the input
reaches ``u`` and ``v`` reaches the output without visiting ``t`` (positions
increase along paths), which is a path avoiding ``t``. This needs every tensor
to be reachable from the one input and to reach the output, which holds for
the tensors collected by walking back from the output of a one-input model.

Imports Keras; used by :mod:`weightlab._tf.session` in the engine process.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

__all__ = ["Cut", "GraphPlan", "plan_graph"]


@dataclass(eq=False)
class Cut:
    """A tensor that dominates the model output.

    Attributes
    ----------
    tensor:
        The symbolic Keras tensor.
    position:
        Its index in the plan's topological order of tensors (0 = model input).
    layer:
        Name of the layer (operation) that produces it.
    prefix_ops:
        ``id()`` of every operation needed to compute it from the model input.
    sample_bytes:
        Bytes of one sample's activation (``prod(shape[1:]) * itemsize``).
    suffix_bytes:
        Bytes of one sample's activations downstream of the cut (the working
        set of a pass that starts here).
    """

    tensor: Any
    position: int
    layer: str
    prefix_ops: frozenset[int]
    sample_bytes: int
    suffix_bytes: int = 0


@dataclass(eq=False)
class GraphPlan:
    """Cuts of a one-input, one-output Keras model and the layers they skip.

    Attributes
    ----------
    input:
        The model input as a :class:`Cut` (position 0, empty prefix).
    candidates:
        Cuts worth caching, in topological order: for every layer with
        weights, the latest cut upstream of it (its own input when that
        dominates the output), the model input and output excluded.
    var_ops:
        ``id(variable)`` -> ``id()`` of the operations (graph layers, nested
        models as one) whose weights include it.
    node_positions:
        For every node (layer call) of the graph, input layers excluded, the
        position of its first output tensor in the topological order.
    sample_bytes:
        Bytes of all activations of one sample (sum over the graph's tensors),
        a bound on a forward pass' working set per sample.
    """

    input: Cut
    candidates: list[Cut] = field(default_factory=list)
    var_ops: dict[int, set[int]] = field(default_factory=dict)
    node_positions: list[int] = field(default_factory=list)
    sample_bytes: int = 0

    def layers_after(self, cut: Cut) -> int:
        """Number of layer calls that run when evaluating from ``cut`` to the output."""
        # Every tensor after a dominator in topological order descends from it.
        return sum(1 for p in self.node_positions if p > cut.position)

    def select(self, budget_bytes: int, rows: int) -> list[Cut]:
        """Candidates to cache for ``rows`` samples within ``budget_bytes``, in topological order.

        Greedy from the output backwards (later cuts serve more edits for
        fewer recomputed layers and are usually smaller): a candidate is kept
        when it fits in what is left of the budget.
        """
        kept: list[Cut] = []
        left = int(budget_bytes)
        for cut in reversed(self.candidates):
            need = cut.sample_bytes * rows
            if need <= left:
                kept.append(cut)
                left -= need
        return kept[::-1]


def _itemsize(tensor: Any) -> int:
    return np.dtype(keras.backend.standardize_dtype(tensor.dtype)).itemsize


def _sample_bytes(tensor: Any) -> int:
    dims = tuple(tensor.shape)[1:]
    if any(d is None for d in dims):
        raise ValueError(f"tensor {tensor.name} has a free dimension: {tuple(tensor.shape)}")
    return int(math.prod(dims)) * _itemsize(tensor)


def _node_of(tensor: Any) -> Any:
    op, node_index, _ = tensor._keras_history
    return op._inbound_nodes[node_index]


def plan_graph(model: keras.Model) -> GraphPlan:
    """Analyse the functional graph of a one-input, one-output model.

    Parameters
    ----------
    model:
        A Keras 3 functional or Sequential model built on an input.

    Returns
    -------
    GraphPlan

    Raises
    ------
    ValueError
        When the graph cannot be analysed (no functional graph, several
        inputs or outputs, tensors with free non-batch dimensions); callers
        then evaluate with full passes only.
    """
    inputs: Sequence[Any] = model.inputs
    outputs: Sequence[Any] = model.outputs
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError("incremental evaluation needs one input and one output")
    source, sink = inputs[0], outputs[0]
    # Topological order of tensors (iterative depth-first post-order from the output).
    order: list[Any] = []
    pos: dict[int, int] = {}
    parents: dict[int, list[Any]] = {}
    stack: list[tuple[Any, bool]] = [(sink, False)]
    while stack:
        t, expanded = stack.pop()
        if id(t) in pos:
            continue
        if expanded:
            pos[id(t)] = len(order)
            order.append(t)
            continue
        ins = [] if t is source else list(_node_of(t).input_tensors)
        if t is not source and not ins:
            raise ValueError(f"tensor {t.name} does not depend on the model input")
        parents[id(t)] = ins
        stack.append((t, True))
        stack.extend((p, False) for p in reversed(ins) if id(p) not in pos)
    if order[0] is not source:
        raise ValueError("the model input is not the first tensor of the graph")
    n = len(order)
    # Nodes (layer calls) and the operations each tensor needs.
    node_positions: list[int] = []
    seen_nodes: set[int] = set()
    prefix: list[frozenset[int]] = [frozenset()] * n
    var_ops: dict[int, set[int]] = {}
    for i, t in enumerate(order):
        if t is source:
            continue
        node = _node_of(t)
        op = node.operation
        if id(node) not in seen_nodes:
            seen_nodes.add(id(node))
            node_positions.append(i)
            for v in op.weights:
                var_ops.setdefault(id(v), set()).add(id(op))
        acc = {id(op)}
        for p in parents[id(t)]:
            acc |= prefix[pos[id(p)]]
        prefix[i] = frozenset(acc)
    # Dominators: no edge u -> v with pos(u) < i < pos(v).
    heads = [0] * n  # heads[j]: furthest head of an edge leaving tensor j
    for i, t in enumerate(order):
        for p in parents[id(t)]:
            j = pos[id(p)]
            heads[j] = max(heads[j], i)
    furthest = 0
    dominates = [False] * n
    for i in range(n):
        dominates[i] = furthest <= i
        furthest = max(furthest, heads[i])
    sizes = [_sample_bytes(t) for t in order]
    after = np.concatenate([np.cumsum(sizes[::-1])[::-1][1:], [0]]).astype(int)
    cuts = {
        i: Cut(
            order[i],
            i,
            "input" if i == 0 else _node_of(order[i]).operation.name,
            prefix[i],
            sizes[i],
            int(after[i]),
        )
        for i in range(n)
        if dominates[i]
    }
    # Per layer with weights: the latest cut whose prefix excludes it.
    best: dict[int, Cut] = {}
    dom_positions = sorted(cuts)
    for t in order[1:]:
        op = _node_of(t).operation
        if not op.weights:
            continue
        latest = max(j for j in dom_positions if id(op) not in cuts[j].prefix_ops)
        if 0 < latest < n - 1:
            best[latest] = cuts[latest]
    return GraphPlan(
        input=cuts[0],
        candidates=[best[j] for j in sorted(best)],
        var_ops=var_ops,
        node_positions=node_positions,
        sample_bytes=sum(sizes),
    )
