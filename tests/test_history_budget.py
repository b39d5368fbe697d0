"""The edit history's memory budget: past arrays are dropped, replays give the same bits.

A session under a tight budget must be indistinguishable from one without a
budget (same positions, steps, returned names and bits of every tensor) over
random sequences of every kind of edit, undo, redo, goto and step toggling,
while holding no more past arrays than its budget allows.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import textwrap
import weakref
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest

from weightlab.core.edits import (
    INITIALIZERS,
    Add,
    AddNoise,
    Clip,
    ClipPercentile,
    PruneMagnitude,
    PruneNeurons,
    Reinit,
    Revert,
    Scale,
    ScaleNeurons,
    SetValue,
    ZeroNeurons,
    ZeroOutside,
    ZeroRange,
)
from weightlab.core.errors import RecipeError, WeightLabError
from weightlab.core.model import ModelFile
from weightlab.core.session import HISTORY_BUDGET_ENV, EditSession, parse_budget

#: layer -> (class, {weight: (shape, dtype)}); several dtypes on purpose.
LAYERS = {
    "conv2d": ("Conv2D", {"kernel": ((3, 3, 2, 6), "float32"), "bias": ((6,), "float32")}),
    "depthwise": ("DepthwiseConv2D", {"kernel": ((3, 3, 3, 2), "float16"), "bias": ((6,), "float16")}),
    "dense": ("Dense", {"kernel": ((24, 5), "float64"), "bias": ((5,), "float64")}),
    "dense_1": ("Dense", {"kernel": ((5, 4), "float32")}),
}
NAMES = [f"{layer}/{w}" for layer, (_, ws) in LAYERS.items() for w in ws]


def build_model(seed: int = 0) -> ModelFile:
    rng = np.random.default_rng(seed)
    values = {
        f"{layer}/{w}": rng.normal(0, 0.3, shape).astype(dtype)
        for layer, (_, ws) in LAYERS.items()
        for w, (shape, dtype) in ws.items()
    }
    classes = {layer: cls for layer, (cls, _) in LAYERS.items()}
    return ModelFile.from_arrays(values, "m.keras", format="keras", classes=classes)


def model_nbytes(model: ModelFile) -> int:
    return sum(t.nbytes for t in model)


def random_edit(rng: np.random.Generator):
    """One edit of a random op with random (valid) parameters and target."""
    targets = [*NAMES, "conv2d", "dense", "*/kernel", "*/bias", "*", ["dense/kernel", "conv2d/bias"]]
    t = targets[rng.integers(len(targets))]
    lo, hi = sorted(rng.normal(0, 0.3, 2).tolist())
    seed = int(rng.integers(0, 2**31))
    kind = int(rng.integers(16))
    if kind == 0:
        return Clip(target=t, min=lo, max=hi)
    if kind == 1:
        return ClipPercentile(target=t, lower=float(rng.uniform(0, 20)), upper=float(rng.uniform(80, 100)))
    if kind == 2:
        return ZeroRange(target=t, min=lo, max=hi)
    if kind == 3:
        return ZeroOutside(target=t, min=lo, max=hi)
    if kind == 4:
        return Scale(target=t, factor=float(rng.uniform(-2, 2)))
    if kind == 5:
        return Add(target=t, value=float(rng.normal()))
    if kind == 6:
        return AddNoise(target=t, std=float(rng.uniform(0, 0.2)), seed=seed)
    if kind == 7:
        return SetValue(target="dense/kernel", index=(int(rng.integers(24)), int(rng.integers(5))), value=lo)
    if kind == 8:
        return Revert(target=t)
    if kind == 9:
        anyshape = INITIALIZERS[:11]  # not orthogonal (2-D+) or identity (2-D only): t may be a bias
        return Reinit(target=t, initializer=anyshape[rng.integers(len(anyshape))], seed=seed)
    if kind == 10:
        return PruneMagnitude(target=t, sparsity=float(rng.uniform()), scope=["tensor", "global"][seed % 2])
    if kind == 11:
        return PruneMagnitude(target=t, threshold=abs(lo))
    if kind == 12:
        neurons = sorted({int(i) for i in rng.integers(0, 5, 2)})
        return ZeroNeurons(target="dense", neurons=neurons, axis=["out", "in"][seed % 2])
    if kind == 13:
        return ScaleNeurons(target="conv2d", neurons=[int(rng.integers(6))], factor=float(rng.uniform(-2, 2)))
    if kind == 14:
        return ScaleNeurons(target="depthwise", neurons=[int(rng.integers(6))], factor=1.5)
    if seed % 2:
        return PruneNeurons(target="conv2d", count=int(rng.integers(0, 4)), norm="l2")
    return PruneNeurons(target="dense", fraction=float(rng.uniform(0, 0.6)))


def assert_same_state(s: EditSession, ref: EditSession, where: str) -> None:
    assert s.position == ref.position, where
    assert [(st.edit, st.enabled, st.changed) for st in s.steps] == [
        (st.edit, st.enabled, st.changed) for st in ref.steps
    ], where
    assert s.edited_names == ref.edited_names and s.is_modified == ref.is_modified, where
    for n in NAMES:
        a, b = s.array(n), ref.array(n)
        assert a.dtype == b.dtype and a.shape == b.shape, (where, n)
        assert a.tobytes() == b.tobytes(), (where, n)  # bit for bit, NaN payloads included
        assert np.array_equal(a, b, equal_nan=True), (where, n)
        assert not a.flags.writeable, (where, n)


def recount(s: EditSession) -> int:
    """History bytes counted from scratch (white box): distinct buffers of checkpoints, not current."""
    def owner(a):
        while isinstance(a.base, np.ndarray):
            a = a.base
        return a

    held = {id(owner(a)): owner(a).nbytes for snap in s._checkpoints.values() for a in snap.values()}
    current = {id(owner(a)) for a in s._current.values()}
    dicts = sum(sys.getsizeof(snap) for p, snap in s._checkpoints.items() if p)
    return sum(nb for k, nb in held.items() if k not in current) + dicts


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_budgeted_history_replays_the_same_bits(seed):
    """Random edits, undo/redo/goto and toggles: every budget gives the bits of no budget."""
    rng = np.random.default_rng(seed)
    ref = EditSession(build_model(), history_budget_bytes=1 << 40)
    size = model_nbytes(ref.model)
    sessions = [EditSession(build_model(), history_budget_bytes=b) for b in (0, size // 3, 2 * size)]
    everyone = [ref, *sessions]
    for action in range(160):
        r = rng.random()
        if r < 0.45 or not ref.steps:
            edit = random_edit(rng)
            what, results = f"apply {edit.describe()}", [s.apply(edit) for s in everyone]
        elif r < 0.6:
            what, results = "undo", [s.undo() for s in everyone]
        elif r < 0.7:
            what, results = "redo", [s.redo() for s in everyone]
        elif r < 0.8:
            pos = int(rng.integers(len(ref.steps) + 1))
            what, results = f"goto {pos}", [s.goto(pos) for s in everyone]
        else:
            index, on = int(rng.integers(len(ref.steps))), bool(rng.random() < 0.5)
            before = {n: ref.array(n).tobytes() for n in NAMES}
            what, results = f"toggle {index} {on}", [s.set_step_enabled(index, on) for s in everyone]
            moved = {n for n in NAMES if ref.array(n).tobytes() != before[n]}
            # Identity-based: may name more than changed, never less.
            assert all(moved <= got for got in results), what
            results = [set()] * len(results)
        where = f"seed {seed}, action {action}: {what}"
        assert all(got == results[0] for got in results), where
        for s in sessions:
            assert_same_state(s, ref, where)
            assert s.history_nbytes <= s.history_budget_bytes, where
            assert s.history_nbytes == recount(s), where
    # The tight budgets did drop past states (else this test proves nothing).
    assert sessions[0].checkpoint_interval > ref.checkpoint_interval == 1


def test_replays_are_correct_with_steps_switched_off():
    edits = [
        AddNoise(target="*", std=0.1, seed=3),
        PruneMagnitude(target="*/kernel", sparsity=0.4, scope="global"),
        Reinit(target="dense_1/kernel", initializer="glorot_uniform", seed=5),
        Revert(target="conv2d"),
        Scale(target="*", factor=1.5),
        PruneNeurons(target="dense", count=2),
        ClipPercentile(target="*", lower=5, upper=95),
    ]
    ref = EditSession(build_model(), history_budget_bytes=1 << 40)
    s = EditSession(build_model(), history_budget_bytes=0)
    for e in edits:
        ref.apply(e)
        s.apply(e)
    for sess in (ref, s):
        sess.set_step_enabled(1, False)
        sess.set_step_enabled(4, False)
        sess.goto(3)
    assert_same_state(s, ref, "two steps off, at 3")
    for pos in (7, 0, 5, 2, 6):
        ref.goto(pos)
        s.goto(pos)
        assert_same_state(s, ref, f"goto {pos}")
    # A fresh history without those steps gives the same bits.
    fresh = EditSession(build_model())
    for i, e in enumerate(edits[:6]):
        if i not in (1, 4):
            fresh.apply(e)
    for n in NAMES:
        assert s.array(n).tobytes() == fresh.array(n).tobytes(), n


def test_past_arrays_beyond_the_budget_are_freed():
    kernel = np.random.default_rng(0).normal(0, 0.1, (96, 64)).astype(np.float32)
    model = ModelFile.from_arrays({"dense/kernel": kernel}, "m.h5", format="h5", classes={"dense": "Dense"})

    def run(budget):
        s = EditSession(model, history_budget_bytes=budget)
        refs = []
        for i in range(300):
            s.apply(Scale(target="dense/kernel", factor=1.0 + (-1) ** i * 1e-3))
            refs.append(weakref.ref(s.array("dense/kernel")))
        gc.collect()
        return s, sum(r() is not None for r in refs)

    budget = 10 * kernel.nbytes
    s, alive = run(budget)
    assert s.history_nbytes <= budget
    assert alive * kernel.nbytes <= budget + kernel.nbytes  # the current array is outside the budget
    assert s.checkpoint_interval >= 300 * kernel.nbytes // budget
    _, alive_unbounded = run(1 << 40)
    assert alive_unbounded == 300  # without a budget every past array is kept


@dataclass(frozen=True, kw_only=True)
class CountingScale(Scale):
    """Scale that counts its applications (to measure replay cost)."""

    calls: ClassVar[list[int]] = []

    def compute(self, name, current, source):
        CountingScale.calls.append(1)
        return super().compute(name, current, source)


def test_undo_replays_fewer_edits_than_the_checkpoint_interval():
    kernel = np.linspace(-1, 1, 4096, dtype=np.float32).reshape(64, 64)
    model = ModelFile.from_arrays({"dense/kernel": kernel}, "m.h5", format="h5", classes={"dense": "Dense"})
    s = EditSession(model, history_budget_bytes=8 * kernel.nbytes)
    ref = EditSession(model, history_budget_bytes=1 << 40)
    for i in range(200):
        e = CountingScale(target="dense/kernel", factor=1.01 if i % 3 else 0.97)
        s.apply(e)
        ref.apply(e)
    k = s.checkpoint_interval
    assert 1 < k <= 64  # about 200 steps / 8 arrays, rounded up to a power of two
    for pos in range(199, -1, -1):
        CountingScale.calls.clear()
        s.undo()
        assert len(CountingScale.calls) < k, pos
        ref.goto(pos)
        assert s.array("dense/kernel").tobytes() == ref.array("dense/kernel").tobytes(), pos
    CountingScale.calls.clear()
    s.goto(200)
    assert len(CountingScale.calls) < k
    ref.goto(200)
    assert s.array("dense/kernel").tobytes() == ref.array("dense/kernel").tobytes()


def test_failed_recipe_under_a_budget_applies_nothing():
    s = EditSession(build_model(), history_budget_bytes=0)
    for _ in range(5):
        s.apply(Scale(target="*", factor=1.1))
    before = {n: s.array(n) for n in NAMES}
    recipe = {"version": 1, "edits": [{"op": "scale", "target": "*", "factor": 2.0}] * 9 + [{"op": "scale", "target": "nope", "factor": 1}]}
    with pytest.raises(RecipeError, match="step 10"):
        s.apply_recipe(recipe)
    assert s.position == 5 and len(s.steps) == 5
    assert all(s.array(n) is before[n] for n in NAMES)
    s.undo()
    ref = EditSession(build_model())
    for _ in range(5):
        ref.apply(Scale(target="*", factor=1.1))
    ref.undo()
    assert_same_state(s, ref, "undo after a failed recipe")


def test_budget_setting(monkeypatch):
    monkeypatch.setenv(HISTORY_BUDGET_ENV, "3M")
    assert EditSession(build_model()).history_budget_bytes == 3 * 1024 * 1024
    assert EditSession(build_model(), history_budget_bytes=7).history_budget_bytes == 7
    monkeypatch.setenv(HISTORY_BUDGET_ENV, "lots")
    with pytest.raises(WeightLabError, match=f"{HISTORY_BUDGET_ENV}.*'lots'"):
        EditSession(build_model())
    monkeypatch.delenv(HISTORY_BUDGET_ENV)
    assert EditSession(build_model()).history_budget_bytes > 0
    with pytest.raises(ValueError):
        EditSession(build_model(), history_budget_bytes=-1)
    assert [parse_budget(t) for t in ("1024", "64k", "512M", "2G", " 1 GiB ")] == [1024, 65536, 512 << 20, 2 << 30, 1 << 30]
    with pytest.raises(ValueError):
        parse_budget("-5")


def test_lowering_the_budget_drops_checkpoints_at_once():
    s = EditSession(build_model(), history_budget_bytes=1 << 40)
    for _ in range(20):
        s.apply(Scale(target="*", factor=1.01))
    assert s.history_nbytes > 0 and s.checkpoint_interval == 1
    s.goto(10)
    s.history_budget_bytes = 0
    assert s.history_nbytes == 0 and s.position == 10
    ref = EditSession(build_model())
    for _ in range(10):
        ref.apply(Scale(target="*", factor=1.01))
    for n in NAMES:
        assert s.array(n).tobytes() == ref.array(n).tobytes()
    s.goto(20)
    ref2 = EditSession(build_model())
    for _ in range(20):
        ref2.apply(Scale(target="*", factor=1.01))
    for n in NAMES:
        assert s.array(n).tobytes() == ref2.array(n).tobytes()


@pytest.mark.skipif(sys.platform != "linux", reason="peak RSS read from /proc/self/status (Linux)")
def test_long_recipe_stays_within_the_budget_in_memory(tmp_path):
    """20,000 scale steps on a 73,728-value kernel: 5.9 GB of past arrays without a budget."""
    code = textwrap.dedent(
        """
        import json, sys
        import numpy as np
        from weightlab.core.model import LayerInfo, ModelFile, TensorInfo
        from weightlab.core.session import EditSession

        class R:
            def read(self, info):
                return np.random.default_rng(0).normal(0, 0.1, info.shape).astype(np.float32)
            def close(self):
                pass

        info = TensorInfo("dense/kernel", "dense", "kernel", "k", (288, 256), "float32")
        model = ModelFile("m.h5", "h5", [LayerInfo("dense", "Dense", [info])], R())
        s = EditSession(model, history_budget_bytes=32 << 20)
        s.apply_recipe(sys.argv[1])
        s.undo()
        # VmHWM: this process's own peak. ru_maxrss would not do: Linux carries it
        # across execve, so it starts at the peak of the test process that spawned us.
        hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
        print(json.dumps({"rss_kb": int(hwm.split()[1]),
                          "history": s.history_nbytes, "position": s.position}))
        """
    )
    recipe = tmp_path / "long.json"
    edit = {"op": "scale", "target": "dense/kernel", "factor": 0.999}
    recipe.write_text('{"version": 1, "edits": [' + ", ".join([json.dumps(edit)] * 20_000) + "]}")
    out = subprocess.run([sys.executable, "-c", code, str(recipe)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["position"] == 19_999 and result["history"] <= 32 << 20
    assert result["rss_kb"] < 400_000, result  # interpreter + NumPy + 32 MiB, not 5.9 GB
