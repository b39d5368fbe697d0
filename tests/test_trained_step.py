"""The ``trained`` history step: undo/redo, the documented hash, recipes with a sidecar .npz, the budget."""

from __future__ import annotations

import gc
import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import weightlab
from weightlab.core.edits import PruneMagnitude, Scale, edit_from_dict
from weightlab.core.errors import RecipeError
from weightlab.core.model import ModelFile
from weightlab.core.recipe import load_recipe, parse_recipe, save_recipe
from weightlab.core.session import EditSession
from weightlab.core.trained import Trained, arrays_sha256, live_arrays, trained_from_dict

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "QT_QPA_PLATFORM": "offscreen"}
LABEL = "fine-tune 5 epochs, lr 0.001, masks kept"


def build_model() -> ModelFile:
    rng = np.random.default_rng(1)
    values = {
        "dense/kernel": rng.normal(size=(6, 4)).astype("float32"),
        "dense/bias": rng.normal(size=(4,)).astype("float32"),
        "out/kernel": rng.normal(size=(4, 3)).astype("float64"),
        "out/bias": np.zeros(3, "float64"),
    }
    return ModelFile.from_arrays(values, "m.keras", format="keras", classes={"dense": "Dense", "out": "Dense"})


def trained_arrays(seed: int = 2) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "dense/kernel": rng.normal(size=(6, 4)).astype("float32"),
        "out/kernel": rng.normal(size=(4, 3)).astype("float64"),
    }


def bits(session: EditSession) -> dict[str, bytes]:
    return {n: session.array(n).tobytes() for n in session.model.tensors}


@pytest.fixture
def session() -> EditSession:
    return EditSession(build_model(), history_budget_bytes=0)


# -- the step ------------------------------------------------------------------------


def test_hash_is_the_documented_digest():
    arrays = trained_arrays()
    h = hashlib.sha256(b"weightlab-trained-v1\n")
    for name in sorted(arrays):
        a = arrays[name]
        h.update(json.dumps([name, a.dtype.str, list(a.shape)], separators=(",", ":")).encode() + b"\n")
        h.update(np.ascontiguousarray(a).tobytes())
    assert arrays_sha256(arrays) == h.hexdigest()
    step = Trained.from_arrays(arrays, LABEL)
    assert step.sha256 == h.hexdigest()
    assert step.target == ("dense/kernel", "out/kernel")


def test_hash_names_the_bits_dtype_and_shape():
    arrays = trained_arrays()
    base = arrays_sha256(arrays)
    flipped = dict(arrays, **{"dense/kernel": arrays["dense/kernel"].copy()})
    flipped["dense/kernel"].view(np.uint32)[0, 0] ^= 1  # one bit
    reshaped = dict(arrays, **{"dense/kernel": arrays["dense/kernel"].reshape(4, 6)})
    retyped = dict(arrays, **{"dense/kernel": arrays["dense/kernel"].view(np.int32)})
    renamed = {"dense/kernel2": arrays["dense/kernel"], "out/kernel": arrays["out/kernel"]}
    fortran = dict(arrays, **{"dense/kernel": np.asfortranarray(arrays["dense/kernel"])})
    digests = {arrays_sha256(d) for d in (flipped, reshaped, retyped, renamed)}
    assert base not in digests and len(digests) == 4
    assert arrays_sha256(fortran) == base  # the values, not the memory layout
    with pytest.raises(ValueError, match="dtype"):
        arrays_sha256({"a/b": np.array(["x"])})


def test_undo_redo_and_switching(session):
    session.apply(PruneMagnitude(target="*/kernel", sparsity=0.5))
    pruned = bits(session)
    new = trained_arrays()
    step = Trained.from_arrays(new, LABEL, {"epochs": 5})
    new["dense/kernel"][0, 0] = 123.0  # the caller's array changes later: the history does not
    changed = session.apply(step)
    assert changed == {"dense/kernel", "out/kernel"}
    assert session.steps[-1].edit.describe() == LABEL
    trained = bits(session)
    assert session.array("dense/kernel")[0, 0] != 123.0
    assert np.array_equal(session.array("out/kernel"), trained_arrays()["out/kernel"])
    assert session.array("dense/bias").tobytes() == pruned["dense/bias"]  # untouched tensors stay
    session.undo()
    assert bits(session) == pruned
    session.redo()
    assert bits(session) == trained
    session.set_step_enabled(1, False)
    assert bits(session) == pruned
    session.set_step_enabled(1, True)
    assert bits(session) == trained
    session.goto(0)
    session.goto(2)
    assert bits(session) == trained
    assert not session.array("dense/kernel").flags.writeable


def test_apply_checks_targets_shapes_and_dtypes(session):
    wrong_shape = Trained.from_arrays({"dense/kernel": np.zeros((4, 6), "float32")}, LABEL)
    with pytest.raises(RecipeError, match=r"'dense/kernel' is \(6, 4\) float32 in the model; .* \(4, 6\) float32"):
        session.apply(wrong_shape)
    wrong_dtype = Trained.from_arrays({"out/kernel": np.zeros((4, 3), "float32")}, LABEL)
    with pytest.raises(RecipeError, match=r"'out/kernel' .* float64 in the model; .* float32"):
        session.apply(wrong_dtype)
    unknown = Trained.from_arrays({"dense/kernal": np.zeros((6, 4), "float32")}, LABEL)
    with pytest.raises(RecipeError, match="no tensor named 'dense/kernal'; did you mean 'dense/kernel'"):
        session.apply(unknown)
    assert session.position == 0 and not session.edited_names


def test_parsed_step_without_arrays_refuses_to_apply(session):
    step = Trained.from_arrays(trained_arrays(), LABEL)
    bare = trained_from_dict(step.to_dict())
    assert isinstance(bare, Trained) and bare == step and not bare.has_arrays
    with pytest.raises(RecipeError, match="not loaded"):
        bare.apply(session.model, session)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sha256": "abc"}, "64 lowercase hex"),
        ({"label": ""}, "label"),
        ({"target": []}, "target"),
        ({"target": ["a/b", "a/b"]}, "twice"),
        ({"spec": [1]}, "spec"),
        ({"spec": {"x": float("nan")}}, "plain JSON"),
        ({"target": {"a/b": 1}}, "list of tensor names"),
        ({"label": 3}, "label"),
        ({"frobnicate": 1}, "unknown parameter"),
    ],
)
def test_malformed_steps_are_recipe_errors(change, message):
    d = {"op": "trained", "target": ["dense/kernel"], "label": LABEL, "sha256": "0" * 64, **change}
    with pytest.raises(RecipeError, match=rf"r\.json, step 2 \(trained\): .*{message}"):
        parse_recipe({"version": 1, "edits": [{"op": "scale", "target": "x", "factor": 2.0}, d]}, "r.json")
    with pytest.raises(RecipeError, match=r"step \(trained\): missing parameter\(s\) label"):
        trained_from_dict({"op": "trained", "target": ["dense/kernel"], "sha256": "0" * 64})


def test_not_a_user_op():
    """No menu, catalogue entry or hand-written edit_from_dict step: only recipes and journals read it."""
    from weightlab.core.catalogue import CATALOGUE
    from weightlab.core.edits import EDIT_TYPES

    assert "trained" not in EDIT_TYPES and "trained" not in CATALOGUE
    with pytest.raises(RecipeError, match="unknown op 'trained'"):
        edit_from_dict({"op": "trained", "target": "a/b", "label": "x", "sha256": "0" * 64})


# -- recipes ---------------------------------------------------------------------------


def saved_recipe(session: EditSession, folder: Path) -> tuple[Path, Trained]:
    session.apply(PruneMagnitude(target="*/kernel", sparsity=0.5))
    step = Trained.from_arrays(trained_arrays(), LABEL, {"epochs": 5, "lr": 0.001})
    session.apply(step)
    session.apply(Scale(target="out/bias", factor=2.0))
    path = folder / "prune.json"
    save_recipe(session.to_recipe(), path)
    return path, step


def test_recipe_writes_the_arrays_beside_it_and_replays_bit_for_bit(session, tmp_path):
    recipe = session.to_recipe()
    path, step = saved_recipe(session, tmp_path)
    assert recipe == {"version": 1, "edits": []}  # to_recipe's dict is not changed by saving
    sidecar = f"prune.{step.sha256[:12]}.npz"
    assert sorted(p.name for p in tmp_path.iterdir()) == [sidecar, "prune.json"]
    data = json.loads(path.read_text())
    assert data["edits"][1] == {
        "op": "trained",
        "target": ["dense/kernel", "out/kernel"],
        "label": LABEL,
        "sha256": step.sha256,
        "spec": {"epochs": 5, "lr": 0.001},
        "arrays": sidecar,
    }
    with np.load(tmp_path / sidecar, allow_pickle=False) as z:  # a plain numpy .npz
        assert sorted(z.files) == ["dense/kernel", "out/kernel"]
        assert np.array_equal(z["dense/kernel"], trained_arrays()["dense/kernel"])
    edits = load_recipe(path)
    assert edits[1] == step and edits[1] is not step and edits[1].has_arrays
    fresh = EditSession(build_model())
    fresh.apply_recipe(path)
    assert bits(fresh) == bits(session)
    assert [s.edit.describe() for s in fresh.steps][1] == LABEL


def test_parse_recipe_without_a_folder(tmp_path):
    session = EditSession(build_model())  # not the fixture: the test drops every reference to the step
    path, step = saved_recipe(session, tmp_path)
    data = json.loads(path.read_text())
    # In the process that made it, the arrays are found by hash (session.to_recipe() -> apply_recipe).
    other = EditSession(build_model())
    other.apply_recipe(session.to_recipe())
    assert bits(other) == bits(session)
    # With no live step holding them, a dict alone cannot give the arrays.
    session.goto(0)
    del session, other, step
    gc.collect()
    assert live_arrays(data["edits"][1]["sha256"]) is None
    with pytest.raises(RecipeError, match=r"recipe, step 2 \(trained\): its weights are in 'prune\..*\.npz' beside"):
        parse_recipe(data)
    del data["edits"][1]["arrays"]
    with pytest.raises(RecipeError, match="names no 'arrays' file"):
        parse_recipe(data)
    # load_recipe reads the file and needs nothing in memory.
    assert load_recipe(path)[1].has_arrays


def test_apply_replays_in_a_fresh_process(tmp_path, demo_paths):
    """``weightlab apply`` in a new process: the arrays can only come from the sidecar."""
    session = weightlab.open(demo_paths["keras"])
    try:
        rng = np.random.default_rng(0)
        new = {n: rng.normal(size=session.model.tensor(n).shape).astype("float32") for n in ("dense/kernel", "dense/bias")}
        session.apply(PruneMagnitude(target="*/kernel", sparsity=0.8))
        session.apply(Trained.from_arrays(new, LABEL))
        recipe = tmp_path / "r.json"
        save_recipe(session.to_recipe(), recipe)
        expected = {n: session.array(n).copy() for n in session.edited_names}
    finally:
        session.model.close()
    out = tmp_path / "out.keras"
    res = subprocess.run(
        [sys.executable, "-m", "weightlab", "apply", str(demo_paths["keras"]), str(recipe), "-o", str(out)],
        capture_output=True, text=True, timeout=240, env=ENV,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    replayed = weightlab.open(out)
    try:
        for name, value in expected.items():
            assert replayed.array(name).tobytes() == value.tobytes(), name
        assert np.array_equal(replayed.array("dense/bias"), new["dense/bias"])
    finally:
        replayed.model.close()


def _break_and_load(path: Path) -> RecipeError:
    fresh = EditSession(build_model())
    with pytest.raises(RecipeError) as info:
        fresh.apply_recipe(path)
    assert fresh.position == 0 and not fresh.edited_names  # nothing applied
    return info.value


def _sidecar(path: Path) -> Path:
    return path.parent / json.loads(path.read_text())["edits"][1]["arrays"]


def test_sidecar_missing(session, tmp_path):
    path, _ = saved_recipe(session, tmp_path)
    side = _sidecar(path)
    side.unlink()
    err = _break_and_load(path)
    assert str(path) in str(err) and str(side) in str(err) and "missing" in str(err)


def test_sidecar_with_other_values(session, tmp_path):
    path, step = saved_recipe(session, tmp_path)
    side = _sidecar(path)
    other = trained_arrays(seed=3)
    with open(side, "wb") as f:
        np.savez(f, **other)
    before = side.read_bytes()
    err = _break_and_load(path)
    assert str(path) in str(err) and str(side) in str(err)
    assert f"the step records {step.sha256}" in str(err) and arrays_sha256(other) in str(err)
    assert side.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == [side.name, "prune.json"]


def test_sidecar_with_other_arrays(session, tmp_path):
    path, _ = saved_recipe(session, tmp_path)
    side = _sidecar(path)
    with open(side, "wb") as f:
        np.savez(f, **{"dense/kernel": trained_arrays()["dense/kernel"]})
    err = _break_and_load(path)
    assert "missing out/kernel" in str(err) and str(side) in str(err)


def test_sidecar_link_leading_outside_is_refused(session, tmp_path):
    inside = tmp_path / "recipes"
    inside.mkdir()
    path, _ = saved_recipe(session, inside)
    side = _sidecar(path)
    outside = tmp_path / "elsewhere.npz"
    shutil.move(side, outside)
    side.symlink_to(outside)
    err = _break_and_load(path)
    assert "outside the recipe's folder" in str(err) and str(side) in str(err) and str(path) in str(err)
    # A link that stays inside the folder is read through.
    moved = inside / "kept.npz"
    shutil.move(outside, moved)
    side.unlink()
    side.symlink_to(moved.name)
    fresh = EditSession(build_model())
    fresh.apply_recipe(path)
    assert bits(fresh) == bits(session)


@pytest.mark.parametrize("name", ["../prune.npz", "/tmp/x.npz", "sub/x.npz", ".hidden.npz", "x.json", 7])
def test_sidecar_name_must_be_plain(session, tmp_path, name):
    path, _ = saved_recipe(session, tmp_path)
    data = json.loads(path.read_text())
    data["edits"][1]["arrays"] = name
    path.write_text(json.dumps(data))
    err = _break_and_load(path)
    assert str(path) in str(err)
    assert "plain .npz file name" in str(err) or "must be a file name" in str(err)


def test_sidecar_too_large_or_hostile(session, tmp_path):
    path, _ = saved_recipe(session, tmp_path)
    side = _sidecar(path)
    size = side.stat().st_size
    with pytest.raises(RecipeError, match=rf"the file is {size} bytes; the limit is 100"):
        load_recipe(path, max_sidecar_bytes=100)
    # A compressed archive whose arrays inflate beyond the limit is refused from the headers.
    with open(side, "wb") as f:
        np.savez_compressed(f, **{"dense/kernel": np.zeros((6, 4000), "float32"), "out/kernel": np.zeros((4, 3))})
    assert side.stat().st_size < 10_000
    with pytest.raises(RecipeError, match="more than 10000 bytes once read"):
        load_recipe(path, max_sidecar_bytes=10_000)
    # Pickled objects are never loaded.
    with open(side, "wb") as f:
        np.savez(f, **{"dense/kernel": np.array([{"a": 1}], dtype=object)}, allow_pickle=True)
    with pytest.raises(RecipeError, match="Python objects"):
        load_recipe(path)
    # Not a zip; a FIFO.
    side.write_bytes(b"not a zip")
    with pytest.raises(RecipeError, match="not an .npz archive"):
        load_recipe(path)
    side.unlink()
    os.mkfifo(side)
    with pytest.raises(RecipeError, match="not a regular file"):
        load_recipe(path)
    # A damaged member (bad CRC).
    side.unlink()
    with zipfile.ZipFile(side, "w") as zf:
        for n, a in trained_arrays().items():
            with zf.open(n + ".npy", "w") as m:
                np.lib.format.write_array(m, a)
    raw = bytearray(side.read_bytes())
    raw[200] ^= 0xFF  # inside the first member's data
    side.write_bytes(bytes(raw))
    with pytest.raises(RecipeError, match=str(side)):
        load_recipe(path)


def test_save_without_the_arrays_writes_nothing(session, tmp_path):
    step = Trained.from_arrays(trained_arrays(), LABEL)
    data = {"version": 1, "edits": [{"op": "scale", "target": "out/bias", "factor": 2.0}, step.to_dict()]}
    del step
    gc.collect()
    with pytest.raises(RecipeError, match="not in memory; nothing was written"):
        save_recipe(data, tmp_path / "r.json")
    assert list(tmp_path.iterdir()) == []


def test_failed_recipe_write_removes_the_new_sidecar(session, tmp_path, monkeypatch):
    session.apply(Trained.from_arrays(trained_arrays(), LABEL))
    import weightlab.core.recipe as recipe_mod

    real = recipe_mod.atomic_path
    calls = []

    def failing(target, **kw):
        calls.append(Path(target).name)
        if Path(target).suffix == ".json":
            raise OSError("disk full")
        return real(target, **kw)

    monkeypatch.setattr(recipe_mod, "atomic_path", failing)
    with pytest.raises(OSError, match="disk full"):
        save_recipe(session.to_recipe(), tmp_path / "r.json")
    assert calls == ["r.json"]  # the sidecar is written by core.trained, before the recipe
    assert list(tmp_path.iterdir()) == []


def test_two_steps_with_the_same_weights_share_one_file(session, tmp_path):
    step = Trained.from_arrays(trained_arrays(), LABEL)
    session.apply(step)
    session.apply(Scale(target="dense/kernel", factor=0.5))
    session.apply(Trained.from_arrays(trained_arrays(), "fine-tune again"))
    save_recipe(session.to_recipe(), tmp_path / "r.json")
    assert len(list(tmp_path.glob("*.npz"))) == 1
    fresh = EditSession(build_model())
    fresh.apply_recipe(tmp_path / "r.json")
    assert bits(fresh) == bits(session) and len(fresh.steps) == 3


# -- memory ------------------------------------------------------------------------------


def test_history_budget_counts_the_held_arrays_once(session):
    step = Trained.from_arrays(trained_arrays(), LABEL)
    held = step.nbytes
    assert held == 6 * 4 * 4 + 4 * 3 * 8
    session.apply(step)
    assert session.history_nbytes == 0  # the arrays are the current values
    session.undo()
    assert session.history_nbytes == held  # kept by the step though not current
    session.redo()
    session.apply(Scale(target="*/kernel", factor=2.0))
    assert session.history_nbytes == held  # budget 0: no checkpoint, the step's arrays alone
    session.goto(0)
    session.apply(Scale(target="out/bias", factor=3.0))  # drops the redo tail and the step
    assert session.history_nbytes == 0


def test_history_budget_with_checkpoints_counts_shared_buffers_once():
    session = EditSession(build_model(), history_budget_bytes=10**9)
    step = Trained.from_arrays(trained_arrays(), LABEL)
    session.apply(step)
    session.apply(Scale(target="dense/bias", factor=2.0))
    # checkpoint 1 holds the step's arrays, which are also current: only the dictionaries count
    assert session.history_nbytes == session._dict_bytes > 0
    session.apply(Scale(target="*/kernel", factor=2.0))
    # now they are past values, held by checkpoint 1 and by the step: counted once
    assert session.history_nbytes == session._dict_bytes + step.nbytes


# -- the crash journal ---------------------------------------------------------------------


@pytest.fixture
def journaled(tmp_path, demo_paths):
    """``(session, journal, folder)``: a private copy of the demo journaled into ``folder``."""
    from weightlab.core.journal import SessionJournal

    model = tmp_path / "model" / "digits_cnn.keras"
    model.parent.mkdir()
    shutil.copy(demo_paths["keras"], model)
    session = weightlab.open(model)
    folder = tmp_path / "journals"
    j = SessionJournal(folder)
    j.attach(session)
    yield session, j, folder
    j.close()
    session.model.close()


def _demo_trained(session: EditSession, seed: int = 0) -> Trained:
    rng = np.random.default_rng(seed)
    new = {n: rng.normal(size=session.model.tensor(n).shape).astype("float32") for n in ("dense/kernel", "dense_1/bias")}
    return Trained.from_arrays(new, f"{LABEL} #{seed}")


def _dead_copy(folder: Path, tmp_path: Path) -> Path:
    dead = tmp_path / "dead"
    dead.mkdir()
    for p in folder.iterdir():
        if p.suffix in (".jsonl", ".npz"):
            shutil.copy(p, dead / p.name)
    return dead


def test_a_trained_step_survives_a_crash(journaled, tmp_path):
    from weightlab.core.journal import find_stale, restore

    session, j, folder = journaled
    session.apply(PruneMagnitude(target="*/kernel", sparsity=0.8))
    first, second = _demo_trained(session, 1), _demo_trained(session, 2)
    session.apply(first)
    session.apply(Scale(target="dense_1/kernel", factor=0.5))
    session.apply(second)
    session.undo()
    session.set_step_enabled(1, False)
    j.flush()
    stem = j.path.name[: -len(".jsonl")]
    assert sorted(p.name for p in folder.glob("*.npz")) == sorted(
        f"{stem}.{s.sha256[:12]}.npz" for s in (first, second)
    )
    (cand,) = find_stale(_dead_copy(folder, tmp_path))
    try:
        assert cand.damage is None
        restored = restore(cand, weightlab.open)
    finally:
        cand.release()
    try:
        assert [s.edit for s in restored.steps] == [s.edit for s in session.steps]
        assert [s.enabled for s in restored.steps] == [False if i == 1 else True for i in range(4)]
        assert restored.position == session.position == 3
        assert {n: restored.array(n).tobytes() for n in restored.model.tensors} == {
            n: session.array(n).tobytes() for n in session.model.tensors
        }
        restored.set_step_enabled(1, True)
        restored.redo()
        assert np.array_equal(restored.array("dense/kernel"), second.held_arrays()["dense/kernel"])
    finally:
        restored.model.close()
    # The journal's arrays go with it: after a save nothing is left.
    session.save(tmp_path / "saved.keras")
    j.sync()
    assert list(folder.glob("*.npz")) == [] and list(folder.glob("*.jsonl")) == []


def test_a_missing_or_changed_array_file_restores_the_steps_before_it(journaled, tmp_path):
    from weightlab.core.journal import find_stale, restore

    session, j, folder = journaled
    session.apply(PruneMagnitude(target="*/kernel", sparsity=0.5))
    step = _demo_trained(session)
    session.apply(step)
    session.apply(Scale(target="dense_1/kernel", factor=0.5))
    j.flush()
    pruned = EditSession(session.model)
    pruned.apply(PruneMagnitude(target="*/kernel", sparsity=0.5))
    dead = _dead_copy(folder, tmp_path)
    (side,) = dead.glob("*.npz")
    with open(side, "wb") as f:
        np.savez(f, **{n: a + 1 for n, a in step.held_arrays().items()})
    (cand,) = find_stale(dead)
    try:
        assert cand.edit_count == 1
        assert "step 2" in cand.damage and "SHA-256" in cand.damage and str(side) in cand.damage
        restored = restore(cand, weightlab.open)
        try:
            assert restored.position == 1
            assert restored.array("dense/kernel").tobytes() == pruned.array("dense/kernel").tobytes()
        finally:
            restored.model.close()
        side.unlink()
        cand.discard()
    finally:
        cand.release()
    assert list(dead.iterdir()) == []


def test_discarding_a_journal_removes_its_arrays(journaled, tmp_path):
    from weightlab.core.journal import find_stale

    session, j, folder = journaled
    session.apply(_demo_trained(session))
    j.flush()
    dead = _dead_copy(folder, tmp_path)
    assert len(list(dead.glob("*.npz"))) == 1
    (cand,) = find_stale(dead)
    cand.discard()
    assert list(dead.iterdir()) == []


def test_the_journal_writes_the_arrays_off_the_callers_thread(journaled, monkeypatch):
    import threading

    import weightlab.core.journal as journal_mod

    session, j, folder = journaled
    gate, writers = threading.Event(), []
    real = journal_mod.write_arrays

    def held(target, step):
        writers.append(threading.current_thread())
        assert gate.wait(60)
        real(target, step)

    monkeypatch.setattr(journal_mod, "write_arrays", held)
    session.apply(_demo_trained(session))  # returns while the write is held
    assert j.path is not None and j.path.exists() and list(folder.glob("*.npz")) == []
    gate.set()
    j.flush()  # waits for the arrays too
    assert writers and writers[0] is not threading.current_thread()
    assert len(list(folder.glob("*.npz"))) == 1 and j.error is None
