"""The edit journal (weightlab.core.journal), without Qt.

A journal written while editing must replay into a freshly opened session
with the same arrays bit for bit (``np.array_equal``), exist exactly while
something is unsaved, survive a write cut short, refuse a changed file, and
treat a hostile journal as untrusted input (never hang, never raise anything
but a clean refusal). The SIGKILL test of the window is in test_journal_gui.py.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

import weightlab
from weightlab.core import journal
from weightlab.core.edits import (
    AddNoise,
    Clip,
    PruneMagnitude,
    Reinit,
    Revert,
    Scale,
    SetValue,
    ZeroNeurons,
)
from weightlab.core.journal import JournalError, SessionJournal, find_stale, read_journal, restore
from weightlab.core.session import EditSession


@pytest.fixture
def model(tmp_path, demo_paths) -> Path:
    """A private copy of the demo .keras model."""
    p = tmp_path / "model" / "digits_cnn.keras"
    p.parent.mkdir()
    shutil.copy(demo_paths["keras"], p)
    return p


@pytest.fixture
def folder(tmp_path) -> Path:
    return tmp_path / "journals"


@pytest.fixture
def opened(model, folder):
    """``(session, journal)`` journaling into ``folder``; both closed at teardown."""
    s = weightlab.open(model)
    j = SessionJournal(folder)
    j.attach(s)
    yield s, j
    j.close()
    s.model.close()


def _as_if_dead(j: SessionJournal, tmp_path: Path) -> Path:
    """A copy of ``j``'s journal in a folder of its own, unlocked: what a killed process leaves."""
    assert j.path is not None and j.path.exists()
    dead = tmp_path / f"dead-{len(list(tmp_path.glob('dead-*')))}"
    dead.mkdir()
    shutil.copy(j.path, dead / j.path.name)
    return dead


def _restore_one(folder: Path) -> tuple[journal.Candidate, EditSession]:
    cands = find_stale(folder)
    assert len(cands) == 1, cands
    try:
        return cands[0], restore(cands[0], weightlab.open)
    except BaseException:
        cands[0].release()
        raise


def _assert_same(a: EditSession, b: EditSession) -> None:
    assert [s.edit for s in a.steps] == [s.edit for s in b.steps]
    assert [s.enabled for s in a.steps] == [s.enabled for s in b.steps]
    assert a.position == b.position
    assert a.edited_names == b.edited_names
    for name in a.model.tensors:
        x, y = a.array(name), b.array(name)
        assert x.dtype == y.dtype and np.array_equal(x, y), name


ACTIONS = [
    ("apply", Clip(target="dense/kernel", min=-0.05, max=0.05)),
    ("apply", ZeroNeurons(target="conv2d", neurons=[1, 5], batchnorm=True)),
    ("apply", AddNoise(target="*/bias", std=0.01, seed=7)),
    ("undo", None),
    ("apply", Scale(target="dense_1", factor=np.float32(0.75))),  # a NumPy scalar, as the brush gives
    ("apply", SetValue(target="conv2d_1/kernel", index=(1, 2, 3, 4), value=2.5)),
    ("toggle", (0, False)),
    ("apply", PruneMagnitude(target="*/kernel", sparsity=0.3, scope="global")),
    ("undo", None),
    ("undo", None),
    ("toggle", (3, False)),  # a step of the undone tail: no value changes
    ("redo", None),
    ("apply", Reinit(target="dense/bias", initializer="glorot_uniform", seed=3)),
    ("apply", Revert(target="conv2d/kernel")),
    ("goto", 2),
    ("toggle", (0, True)),
]


def _act(s: EditSession, j: SessionJournal, kind: str, arg) -> None:
    if kind == "apply":
        s.apply(arg)
    elif kind == "undo":
        s.undo()
    elif kind == "redo":
        s.redo()
    elif kind == "goto":
        s.goto(arg)
    elif kind == "toggle":
        s.set_step_enabled(*arg)
    # The window syncs after each of these too: the session announces only
    # changes of values, and a switched-off step (undo, redo, toggle) has none.
    j.sync()


def test_replay_gives_the_same_arrays_bit_for_bit_after_every_action(opened, tmp_path):
    s, j = opened
    for kind, arg in ACTIONS:
        _act(s, j, kind, arg)
        assert s.is_modified and j.path is not None
        cand, restored = _restore_one(_as_if_dead(j, tmp_path))
        try:
            assert cand.damage is None and cand.format == "keras" and cand.model_path == s.model.path
            assert cand.edit_count == len(s.applied_edits)
            _assert_same(s, restored)
        finally:
            restored.model.close()
            cand.discard()
    # One record per change, appended: the journal was never rewritten.
    lines = j.path.read_text().splitlines()
    assert json.loads(lines[1])["t"] == "state"
    assert {json.loads(x)["t"] for x in lines[2:]} <= {"apply", "goto", "toggle", "hash"}


def test_journal_exists_exactly_while_something_is_unsaved(opened, folder, tmp_path):
    s, j = opened
    assert j.path is None and not folder.exists()
    s.apply(Clip(target="dense/kernel", min=-0.05, max=0.05))
    first = j.path
    assert first is not None and first.is_file()
    assert first.name.startswith(f"journal-{os.getpid()}-")
    s.undo()  # back at the opened state: nothing to lose
    assert j.path is None and sorted(os.listdir(folder)) == []
    s.redo()
    assert j.path is not None
    out = tmp_path / "saved.keras"
    s.save(out)
    j.sync()  # the window calls this after a save
    assert j.path is None and sorted(os.listdir(folder)) == []
    # An edit after the save: the journal holds the whole history from the opened
    # file (which the save did not touch), so a restore gives the same arrays.
    s.apply(Scale(target="dense_1/kernel", factor=-1.0))
    cand, restored = _restore_one(_as_if_dead(j, tmp_path))
    try:
        assert cand.edit_count == 2
        _assert_same(s, restored)
    finally:
        restored.model.close()
        cand.discard()
    j.close()
    assert j.path is None and sorted(os.listdir(folder)) == []


def test_a_save_over_the_opened_file_makes_the_journal_refuse(opened, tmp_path):
    s, j = opened
    s.apply(Clip(target="dense/kernel", min=-0.05, max=0.05))
    assert j.wait_hashed(30)
    s.save(s.model.path, overwrite=True)
    j.sync()
    s.apply(Scale(target="dense_1/kernel", factor=-1.0))
    cands = find_stale(_as_if_dead(j, tmp_path))
    assert len(cands) == 1
    with pytest.raises(JournalError, match="changed since"):
        restore(cands[0], weightlab.open)
    cands[0].release()


def test_a_write_cut_short_restores_everything_before_it(opened, tmp_path):
    s, j = opened
    edits = [
        Clip(target="dense/kernel", min=-0.05, max=0.05),
        ZeroNeurons(target="dense", neurons=[0, 3]),
        Scale(target="conv2d/kernel", factor=3.0),
    ]
    s.apply(edits[0])
    # The content hash is appended by a thread started at the first edit: wait for it,
    # so that the last record is the last edit's whatever the machine's load.
    assert j.wait_hashed(60)
    for e in edits[1:]:
        s.apply(e)
    dead = _as_if_dead(j, tmp_path)
    path = dead / j.path.name
    data = path.read_bytes()
    last = data.rstrip(b"\n").rfind(b"\n") + 1
    assert b'"scale"' in data[last:]
    path.write_bytes(data[: last + 25])  # SIGKILL in the middle of the last write
    cand, restored = _restore_one(dead)
    try:
        assert cand.damage is not None and "cut short" in cand.damage
        assert cand.edit_count == 2 and "damaged" in cand.describe()
        expected = weightlab.open(s.model.path)
        try:
            expected.apply_all(edits[:2])
            _assert_same(expected, restored)
        finally:
            expected.model.close()
    finally:
        restored.model.close()
        cand.discard()


@pytest.mark.parametrize(
    "line",
    [
        b"not json at all",
        b"[" * 100_000 + b"]" * 100_000,  # RecursionError in the parser
        b'{"t": "goto", "position": 1' + b"0" * 5000 + b"}",  # an integer too long to parse
        b'{"t": "goto", "position": 99}',
        b'{"t": "goto", "position": true}',
        b'{"t": "toggle", "index": -1, "enabled": false}',
        b'{"t": "toggle", "index": 0, "enabled": "no"}',
        b'{"t": "apply", "edit": {"op": "exec", "target": "x", "code": "import os"}}',
        b'{"t": "apply", "edit": {"op": "clip", "target": "dense/kernel", "min": NaN, "max": 1}}',
        b'{"t": "apply", "edit": {"op": "clip", "target": "dense/kernel", "min": 2, "max": 1}}',
        b'{"t": "state", "edits": [], "enabled": [true], "position": 0}',
        b'{"t": "hash", "sha256": "../../etc/passwd"}',
        b'{"t": "unknown"}',
        b'"a string"',
        b"\xff\xfe binary",
    ],
)
def test_a_hostile_record_ends_the_replay_there(opened, tmp_path, line):
    s, j = opened
    s.apply(Clip(target="dense/kernel", min=-0.05, max=0.05))
    dead = _as_if_dead(j, tmp_path)
    path = dead / j.path.name
    with open(path, "ab") as f:
        f.write(line + b"\n" + b'{"t": "apply", "edit": {"op": "scale", "target": "dense/bias", "factor": 2}}\n')
    cand, restored = _restore_one(dead)
    try:
        assert cand.damage is not None
        assert cand.edit_count == 1  # the clip; nothing after the bad record
        _assert_same(s, restored)
    finally:
        restored.model.close()
        cand.discard()


def _write_journal(folder: Path, header: dict, *records: dict, name: str = "journal-999999999-1.jsonl") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / name
    p.write_text("".join(json.dumps(r) + "\n" for r in (header, *records)))
    return p


def _header(model: Path, **over) -> dict:
    h = {
        "weightlab_journal": 1,
        "path": str(model),
        "format": "keras",
        "pid": 999999999,
        "created": 1.0,
        "files": journal.file_identity(model),
        "sha256": None,
    }
    h.update(over)
    return h


CLIP = {"t": "apply", "edit": {"op": "clip", "target": "dense/kernel", "min": -0.1, "max": 0.1}}


@pytest.mark.parametrize(
    "header",
    [
        {"weightlab_journal": 2},
        {"something": "else"},
        {"weightlab_journal": 1, "path": 3, "format": "keras", "files": [], "created": 0},
        {"weightlab_journal": 1, "path": "x", "format": "keras", "files": [["a", "big", 0]], "created": 0},
    ],
)
def test_a_journal_with_a_bad_header_is_removed_not_offered(folder, header):
    p = _write_journal(folder, header, CLIP)
    assert find_stale(folder) == []
    assert not p.exists() and os.listdir(folder) == []


def test_a_journal_with_nothing_to_restore_is_removed(folder, model):
    p = _write_journal(folder, _header(model), CLIP, {"t": "goto", "position": 0})
    assert find_stale(folder) == []
    assert not p.exists()


def test_changed_content_is_refused_with_the_same_size_and_mtime(folder, model):
    _write_journal(folder, _header(model, sha256=journal.content_hash(model)), CLIP)
    st = model.stat()
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    os.utime(model, ns=(st.st_atime_ns, st.st_mtime_ns))
    (cand,) = find_stale(folder)
    with pytest.raises(JournalError, match=r"content changed \(SHA-256 differs\)") as e:
        restore(cand, weightlab.open)
    assert str(model) in str(e.value)
    cand.release()
    assert (folder / "journal-999999999-1.jsonl").exists()  # kept: the user decides


def test_a_touched_but_identical_file_is_restored_when_the_hash_was_recorded(folder, model):
    _write_journal(folder, _header(model, sha256=journal.content_hash(model)), CLIP)
    os.utime(model, ns=(1, 1))
    (cand,) = find_stale(folder)
    s = restore(cand, weightlab.open)
    try:
        assert s.position == 1 and s.is_edited("dense/kernel")
    finally:
        s.model.close()
        cand.discard()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m.write_bytes(m.read_bytes() + b"x"), "size changed"),
        (lambda m: os.utime(m, ns=(1, 1)), "modification time changed"),
        (lambda m: m.unlink(), "cannot read"),
    ],
)
def test_a_changed_file_without_a_recorded_hash_is_refused(folder, model, change, message):
    _write_journal(folder, _header(model), CLIP)
    change(model)
    (cand,) = find_stale(folder)
    with pytest.raises(JournalError, match=message):
        restore(cand, weightlab.open)
    cand.release()


def test_another_format_now_is_refused(folder, model, demo_paths):
    _write_journal(folder, _header(model, format="h5"), CLIP)
    (cand,) = find_stale(folder)
    with pytest.raises(JournalError, match="opens as 'keras', not 'h5'"):
        restore(cand, weightlab.open)
    cand.release()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_journal_pointing_at_a_fifo_is_refused_without_hanging(folder, tmp_path):
    fifo = tmp_path / "pipe.keras"
    os.mkfifo(fifo)
    header = {"weightlab_journal": 1, "path": str(fifo), "format": "keras", "pid": 1, "created": 1.0,
              "files": [["pipe.keras", 0, 0]], "sha256": None}
    _write_journal(folder, header, CLIP)
    (cand,) = find_stale(folder)
    with pytest.raises(JournalError, match="not a regular file or folder"):
        restore(cand, weightlab.open)
    cand.discard()


def test_journal_size_and_step_limits(folder, model, monkeypatch):
    monkeypatch.setattr(journal, "MAX_JOURNAL_STEPS", 3)
    _write_journal(folder, _header(model), *[CLIP] * 5)
    (cand,) = find_stale(folder)
    assert cand.edit_count == 3 and "more than 3 steps" in cand.damage
    cand.release()
    monkeypatch.setattr(journal, "MAX_JOURNAL_STEPS", 100)
    size = (folder / "journal-999999999-1.jsonl").stat().st_size
    monkeypatch.setattr(journal, "MAX_JOURNAL_BYTES", size - 100)
    cand = read_journal(folder / "journal-999999999-1.jsonl")
    assert f"larger than {size - 100} bytes" in cand.damage and cand.edit_count == 3


def test_a_live_sessions_journal_is_not_offered(opened, folder):
    s, j = opened
    s.apply(Clip(target="dense/kernel", min=-0.05, max=0.05))
    assert find_stale(folder) == []  # its lock is held (also within one process)
    (other,) = find_stale(_copy_folder(folder))
    assert find_stale(other.journal.parent) == []  # a candidate holds the lock too: no double restore
    other.release()
    (again,) = find_stale(other.journal.parent)
    again.discard()


def _copy_folder(folder: Path) -> Path:
    dead = folder.with_name("copied")
    dead.mkdir()
    for p in folder.glob("*.jsonl"):
        shutil.copy(p, dead / p.name)
    return dead


def test_many_undo_redo_records_are_compacted(opened, tmp_path, monkeypatch):
    monkeypatch.setattr(journal, "COMPACT_SLACK", 10)
    s, j = opened
    s.apply(Clip(target="dense/kernel", min=-0.05, max=0.05))
    s.apply(Scale(target="dense/bias", factor=2.0))
    for _ in range(40):
        s.undo()
        s.redo()
    lines = j.path.read_text().splitlines()
    assert len(lines) <= 2 + 2 * 2 + 10 + 2
    cand, restored = _restore_one(_as_if_dead(j, tmp_path))
    try:
        _assert_same(s, restored)
    finally:
        restored.model.close()
        cand.discard()


def test_a_dead_process_journal_with_our_name_is_never_written_over(opened, folder):
    s, j = opened
    folder.mkdir()
    theirs = folder / f"{j._stem}.jsonl"
    theirs.write_bytes(b"their unsaved edits\n")
    s.apply(Clip(target="dense/kernel", min=-0.05, max=0.05))
    assert j.path != theirs and theirs.read_bytes() == b"their unsaved edits\n"


def test_a_state_folder_that_cannot_be_written_never_breaks_editing(model, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    s = weightlab.open(model)
    j = SessionJournal(blocker / "journals")
    try:
        j.attach(s)
        s.apply(Clip(target="dense/kernel", min=-0.05, max=0.05))
        assert s.position == 1 and j.error is not None and j.path is None
    finally:
        j.close()
        s.model.close()


def test_no_thread_is_left_behind(opened):
    s, j = opened
    s.apply(Clip(target="dense/kernel", min=-0.05, max=0.05))
    assert {t.name for t in threading.enumerate()} >= {"weightlab-journal-flush"}
    j.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("weightlab-journal-")]


def test_every_write_is_flushed_to_the_disk_off_the_callers_thread(opened, monkeypatch):
    s, j = opened
    synced: list[tuple[int, int]] = []  # (inode, size) at each fsync by another thread
    cond = threading.Condition()
    real_fsync = os.fsync

    def fsync(fd):
        real_fsync(fd)
        if threading.current_thread() is not threading.main_thread():
            with cond:
                synced.append((os.fstat(fd).st_ino, os.fstat(fd).st_size))
                cond.notify_all()

    monkeypatch.setattr(os, "fsync", fsync)
    for factor in (2.0, 3.0, 4.0):
        s.apply(Scale(target="dense/bias", factor=factor))
        # Written before apply returned (a SIGKILL now loses nothing) ...
        st = j.path.stat()
        assert f'"factor":{factor}' in j.path.read_text()
        # ... and made durable by the flusher thread.
        with cond:
            assert cond.wait_for(lambda st=st: any(i == st.st_ino and n >= st.st_size for i, n in synced), 30)


def test_content_files_of_folders_and_checkpoints(tmp_path):
    sm = tmp_path / "sm"
    (sm / "variables").mkdir(parents=True)
    (sm / "saved_model.pb").write_bytes(b"a")
    (sm / "variables" / "variables.index").write_bytes(b"b")
    (sm / "variables" / "variables.data-00000-of-00001").write_bytes(b"c")
    (sm / "link").symlink_to(tmp_path)
    assert [r for r, _ in journal.content_files(sm)] == [
        "saved_model.pb", "variables/variables.data-00000-of-00001", "variables/variables.index"
    ]
    index = sm / "variables" / "variables.index"
    assert [r for r, _ in journal.content_files(index)] == ["variables.index", "variables.data-00000-of-00001"]
    h = journal.content_hash(sm)
    (sm / "variables" / "variables.data-00000-of-00001").write_bytes(b"d")
    assert journal.content_hash(sm) != h


def test_state_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("WEIGHTLAB_STATE_DIR", str(tmp_path / "st"))
    assert journal.journal_dir() == tmp_path / "st" / "journals"
    monkeypatch.delenv("WEIGHTLAB_STATE_DIR")
    import platformdirs

    assert journal.state_dir() == Path(platformdirs.user_state_dir("weightlab"))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_or_link_planted_as_a_journal_neither_hangs_nor_is_followed(folder, model, tmp_path):
    folder.mkdir()
    os.mkfifo(folder / "journal-999999998-1.jsonl")
    real = _write_journal(tmp_path / "elsewhere", _header(model), CLIP)
    (folder / "journal-999999997-1.jsonl").symlink_to(real)
    assert find_stale(folder) == []
    assert real.exists()  # the link is removed, not what it points to
    assert sorted(os.listdir(folder)) == []


#: Applies an endless, deterministic sequence of edits with a journal, printing the position after each.
_EDITOR = """
import sys
import weightlab
from weightlab.core.journal import SessionJournal
sys.path.insert(0, sys.argv[3])
from test_journal import _edit_number

s = weightlab.open(sys.argv[1])
j = SessionJournal(sys.argv[2])
j.attach(s)
i = 0
while True:
    s.apply(_edit_number(i))
    i += 1
    if i % 5 == 0:
        s.undo()
        s.redo()
    print(i, flush=True)
"""


def _edit_number(i: int):
    """Edit ``i`` of the sequence the killed editor applies."""
    kinds = [
        lambda: Scale(target="dense/bias", factor=1.0 + i / 100),
        lambda: AddNoise(target="conv2d/kernel", std=0.01, seed=i),
        lambda: SetValue(target="dense_1/kernel", index=(i % 64, i % 10), value=float(i)),
        lambda: Clip(target="dense/kernel", min=-1.0 / (i + 1), max=1.0 / (i + 1)),
    ]
    return kinds[i % len(kinds)]()


def test_sigkill_at_random_moments_restores_a_prefix_of_the_edits(model, folder, tmp_path):
    import random
    import signal
    import subprocess
    import sys

    rng = random.Random(20261124)
    for trial in range(5):
        journals = folder / str(trial)
        proc = subprocess.Popen(
            [sys.executable, "-c", _EDITOR, str(model), str(journals), str(Path(__file__).parent)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            wanted = rng.randint(3, 60)
            done = 0
            while done < wanted:
                line = proc.stdout.readline()
                assert line, proc.stderr.read()[-2000:]
                done = int(line)
            proc.send_signal(signal.SIGKILL)  # somewhere in the edits after ``done``
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=60)
            proc.stdout.close()
            proc.stderr.close()
        cand, restored = _restore_one(journals)
        try:
            n = restored.position
            assert n >= done and cand.edit_count == n  # nothing that was reported done is lost
            expected = weightlab.open(model)
            try:
                # Killed between an undo and its redo: one step in the redo tail.
                expected.apply_all([_edit_number(i) for i in range(len(restored.steps))])
                expected.goto(n)
                _assert_same(expected, restored)
            finally:
                expected.model.close()
        finally:
            restored.model.close()
            cand.discard()
        assert list(journals.iterdir()) == []
