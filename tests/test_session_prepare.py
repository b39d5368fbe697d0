"""EditSession.prepare / commit: the heavy half on any thread, the cheap half on the owner's."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from fakes import apply_synchronously, memory_session

from weightlab.core.errors import RecipeError
from weightlab.core.session import (
    ApplyEdit,
    ApplyEdits,
    EditSession,
    Goto,
    SetStepEnabled,
    StaleChange,
)
from weightlab.edits import AddNoise, Clip, PruneMagnitude, Revert, Scale, ZeroNeurons


def _session(budget: int | None = None) -> EditSession:
    rng = np.random.default_rng(1)
    s = memory_session(
        "m.h5",
        {
            "dense/kernel": rng.normal(0, 0.1, (24, 12)).astype(np.float32),
            "dense/bias": rng.normal(0, 0.1, 12).astype(np.float32),
            "out/kernel": rng.normal(0, 0.1, (12, 3)).astype(np.float32),
        },
    )
    if budget is not None:
        s.history_budget_bytes = budget
    return s


def _observable(s: EditSession):
    """Everything the owner can read of a session (arrays by identity)."""
    return (
        s.position,
        [(st.edit, st.enabled, st.changed) for st in s.steps],
        {n: id(s.array(n)) for n in s.model.tensors},
        s.edited_versions().keys(),
        {n: s.version(n) for n in s.model.tensors},
        s.is_modified,
        s.history_nbytes,
        s.checkpoint_interval,
    )


def _same(a: EditSession, b: EditSession) -> None:
    assert a.position == b.position
    assert [(st.edit, st.enabled, st.changed) for st in a.steps] == [(st.edit, st.enabled, st.changed) for st in b.steps]
    for n in a.model.tensors:
        x, y = a.array(n), b.array(n)
        assert x.dtype == y.dtype and x.tobytes() == y.tobytes(), n
        assert not x.flags.writeable


EDITS = [
    Scale(target="*", factor=1.25),
    PruneMagnitude(target="*/kernel", sparsity=0.4, scope="global"),
    AddNoise(target="dense/kernel", std=0.05, seed=4),
    Clip(target="*", min=-0.08, max=0.08),
    Revert(target="out"),
    ZeroNeurons(target="dense", neurons=[1, 3]),
]


def _with_history(budget: int | None = None) -> EditSession:
    s = _session(budget)
    for e in EDITS:
        s.apply(e)
    s.goto(4)
    return s


@pytest.mark.parametrize(
    "change",
    [
        ApplyEdit(Scale(target="dense/kernel", factor=3.0)),
        ApplyEdits((Scale(target="*", factor=0.5), Clip(target="*", min=-0.01, max=0.01)), "r.json"),
        Goto(1),
        Goto(6),
        SetStepEnabled(1, False),
        SetStepEnabled(5, False),
    ],
    ids=repr,
)
def test_prepare_changes_nothing_the_owner_can_see(change):
    s = _with_history(budget=0)
    calls: list[set[str]] = []
    s.subscribe(calls.append)
    before = _observable(s)
    prepared = s.prepare(change)
    assert _observable(s) == before and not calls
    changed = s.commit(prepared)
    assert calls == ([changed] if changed else []) and changed == set(prepared.changed)


@pytest.mark.parametrize("budget", [None, 0, 3000])
def test_prepare_and_commit_give_the_bits_of_the_synchronous_methods(budget):
    rng = np.random.default_rng(budget or 5)
    sync, split = _session(budget), _session(budget)
    for _ in range(60):
        n = len(sync.steps)
        r = rng.random()
        if r < 0.35 or n == 0:
            k = int(rng.integers(len(EDITS)))
            change = ApplyEdit(EDITS[k]) if rng.random() < 0.7 else ApplyEdits(tuple(EDITS[k:k + 3]), "recipe")
        elif r < 0.7:
            change = Goto(int(rng.integers(n + 1)))
        else:
            change = SetStepEnabled(int(rng.integers(n)), bool(rng.random() < 0.5))
        expected = apply_synchronously(sync, change)
        # The split session prepares on another thread, as the window's runner does.
        box: list = []
        t = threading.Thread(target=lambda c=change, box=box: box.append(split.prepare(c)))
        t.start()
        t.join()
        assert split.commit(box[0]) == expected, change
        _same(split, sync)
        assert split.history_nbytes <= split.history_budget_bytes, change
        assert {n: v for n, (v, _) in split.edited_versions().items()}.keys() == sync.edited_versions().keys()
    if budget == 0:
        assert split.checkpoint_interval > 1  # the budget did drop past states


def test_a_change_prepared_before_the_session_moved_is_stale_and_applies_nothing():
    s = _with_history()
    prepared = s.prepare(ApplyEdit(Scale(target="out/kernel", factor=2.0)))
    s.undo()
    before = _observable(s)
    with pytest.raises(StaleChange, match="scale out/kernel"):
        s.commit(prepared)
    assert _observable(s) == before
    # Committing twice is stale too.
    again = s.prepare(Goto(0))
    s.commit(again)
    with pytest.raises(StaleChange):
        s.commit(again)


def test_a_change_prepared_by_another_session_is_refused():
    a, b = _session(), _session()
    with pytest.raises(ValueError, match="another session"):
        b.commit(a.prepare(ApplyEdit(Scale(target="*", factor=2.0))))
    assert not b.steps


def test_a_failing_recipe_step_raises_in_prepare_and_nothing_changes():
    s = _with_history()
    before = _observable(s)
    bad = ApplyEdits((Scale(target="*", factor=2.0), Clip(target="nope", min=0, max=1)), "bad.json")
    with pytest.raises(RecipeError, match=r"bad\.json, step 2 \(clip 'nope'\)"):
        s.prepare(bad)
    assert _observable(s) == before


def test_out_of_range_changes_raise_in_prepare():
    s = _with_history()
    with pytest.raises(IndexError):
        s.prepare(Goto(7))
    with pytest.raises(IndexError):
        s.prepare(SetStepEnabled(6, False))
    with pytest.raises(TypeError):
        s.prepare("undo")  # type: ignore[arg-type]


def test_the_owner_reads_the_session_while_a_change_is_prepared_elsewhere():
    """A replay on another thread while the owner reads arrays (and caches unread stored values)."""
    s = _session(budget=0)  # no past states kept: the redo replays the edit
    gate, entered = threading.Event(), threading.Event()
    threads: list[int] = []

    class Gated(Scale):
        def compute(self, name, current, source):
            threads.append(threading.get_ident())
            entered.set()
            assert gate.wait(30)
            return super().compute(name, current, source)

    gate.set()  # open for the first application, on this thread
    s.apply(Gated(target="out/kernel", factor=2.0))
    s.goto(0)
    gate.clear()
    entered.clear()
    threads.clear()
    box: list = []
    t = threading.Thread(target=lambda: box.append(s.prepare(Goto(1))))
    gate_opened = False
    t.start()
    try:
        assert entered.wait(30)
        stored = {n: s.array(n) for n in s.model.tensors}  # reads on the owner's thread meanwhile
        assert s.position == 0 and not s.edited_names
        gate.set()
        gate_opened = True
    finally:
        if not gate_opened:
            gate.set()
        t.join()
    assert threads and threads[0] != threading.get_ident()
    assert s.commit(box[0]) == {"out/kernel"}
    np.testing.assert_array_equal(s.array("out/kernel"), stored["out/kernel"] * np.float32(2.0))
    assert s.array("dense/kernel") is stored["dense/kernel"]  # one cached stored array per tensor
