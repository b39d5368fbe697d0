"""weightlab.core.atomic: recognisable temporary names, stale-temp cleanup, atomic files and folders, umask."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from weightlab.core.atomic import (
    TEMP_MARK,
    atomic_folder,
    atomic_path,
    pid_alive,
    remove_stale_temps,
    temp_path,
)
from weightlab.core.errors import FormatError
from weightlab.formats import open_model, save_model

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX permissions and symlinks")


@contextlib.contextmanager
def _umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture(scope="module")
def dead_pid() -> int:
    """The id of a process that has exited (and was reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert not pid_alive(proc.pid)
    return proc.pid


def _stale(folder: Path, name: str, pid: int, suffix: str = "") -> Path:
    return folder / f".{name}{TEMP_MARK}{pid}-0123abcd{suffix}"


def test_temp_path_is_recognisable_exclusive_and_follows_the_umask(tmp_path):
    with _umask(0o022):
        a = temp_path(tmp_path, "out.h5", suffix=".h5")
        b = temp_path(tmp_path, "out.h5", suffix=".h5")
        d = temp_path(tmp_path, "sm", directory=True)
    assert a != b and a.is_file() and b.is_file() and d.is_dir()
    pattern = re.compile(rf"^\.out\.h5{re.escape(TEMP_MARK)}{os.getpid()}-[0-9a-f]{{8}}\.h5$")
    assert pattern.match(a.name) and pattern.match(b.name), a.name
    if os.name == "posix":
        assert a.stat().st_mode & 0o777 == 0o644
        assert d.stat().st_mode & 0o777 == 0o755


def test_remove_stale_temps_removes_only_dead_writers_entries(tmp_path, dead_pid):
    stale_file = _stale(tmp_path, "out.h5", dead_pid, ".h5")
    stale_file.write_bytes(b"x" * 100)
    stale_dir = _stale(tmp_path, "sm", dead_pid)
    (stale_dir / "variables").mkdir(parents=True)
    (stale_dir / "variables" / "variables.index").write_bytes(b"i")
    mine = temp_path(tmp_path, "mine")
    live = _stale(tmp_path, "live", os.getppid())  # the parent of this process is alive
    live.write_bytes(b"")
    # Not ours: no mark, an old mkstemp-style name, a mark without pid/random, a user's file.
    keep = ["model.h5", ".out.h5.k2j4x9ab.tmp", ".weightlab-abc.h5", f"x{TEMP_MARK}notapid", "notes.txt"]
    for name in keep:
        (tmp_path / name).write_bytes(b"keep")

    removed = remove_stale_temps(tmp_path)

    assert sorted(removed) == sorted([stale_file, stale_dir])
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([*keep, mine.name, live.name])
    assert remove_stale_temps(tmp_path) == []
    assert remove_stale_temps(tmp_path / "missing") == []


@posix_only
def test_remove_stale_temps_never_follows_links(tmp_path, dead_pid):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.bin").write_bytes(b"precious")
    work = tmp_path / "work"
    work.mkdir()
    link_to_dir = _stale(work, "a", dead_pid)
    link_to_dir.symlink_to(outside, target_is_directory=True)
    link_to_file = _stale(work, "b", dead_pid, ".h5")
    link_to_file.symlink_to(outside / "precious.bin")
    folder = _stale(work, "c", dead_pid)
    folder.mkdir()
    (folder / "inner").symlink_to(outside, target_is_directory=True)

    removed = remove_stale_temps(work)

    assert len(removed) == 3 and list(work.iterdir()) == []
    assert (outside / "precious.bin").read_bytes() == b"precious"


def test_atomic_path_writes_whole_file_or_nothing(tmp_path, dead_pid):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    stale = _stale(tmp_path, "out.bin", dead_pid, ".bin")
    stale.write_bytes(b"half")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            assert TEMP_MARK in tmp.name and tmp.suffix == ".bin"
            tmp.write_bytes(b"partial")
            raise RuntimeError("writer failed")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]  # the stale one went too
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


@posix_only
def test_atomic_path_replaces_a_link_without_writing_through_it(tmp_path):
    outside = tmp_path / "precious.txt"
    outside.write_text("precious")
    target = tmp_path / "out.txt"
    target.symlink_to(outside)
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert not target.is_symlink() and target.read_text() == "new"
    assert outside.read_text() == "precious"


@posix_only
@pytest.mark.parametrize(
    ("mask", "mode", "folder_mode"), [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700), (0o002, 0o664, 0o775)]
)
def test_atomic_path_follows_the_umask(tmp_path, mask, mode, folder_mode):
    with _umask(mask):
        with atomic_path(tmp_path / "f.txt") as tmp:
            tmp.write_text("x")
        with atomic_folder(tmp_path / "d") as d:
            (d / "inner.txt").write_text("x")
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == mode
    assert (tmp_path / "d").stat().st_mode & 0o777 == folder_mode
    assert (tmp_path / "d" / "inner.txt").stat().st_mode & 0o777 == mode


def test_atomic_folder_replaces_whole_folder_or_nothing(tmp_path):
    target = tmp_path / "sm"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_folder(target) as tmp:
            (tmp / "new.txt").write_text("new")
            raise RuntimeError("writer failed")
    assert [p.name for p in target.iterdir()] == ["old.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sm"]
    with atomic_folder(target) as tmp:
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sm"]
    with atomic_folder(tmp_path / "fresh") as tmp:
        (tmp / "a").write_text("a")
    assert (tmp_path / "fresh" / "a").read_text() == "a"


@posix_only
@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o077, 0o600)])
@pytest.mark.parametrize("kind", ["keras", "h5"])
def test_saved_models_follow_the_umask(demo_paths, tmp_path, kind, mask, mode):
    src = demo_paths[kind]
    out = tmp_path / f"out{src.suffix}"
    with _umask(mask), open_model(src) as m:
        name = next(iter(m.tensors))
        save_model(m, {name: np.zeros_like(m.read(name))}, out)
    assert out.stat().st_mode & 0o777 == mode
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]


def test_open_removes_leftovers_of_killed_saves(demo_paths, tmp_path, dead_pid):
    src = tmp_path / "m.keras"
    src.write_bytes(demo_paths["keras"].read_bytes())
    stale = _stale(tmp_path, "m.keras", dead_pid, ".keras")
    stale.write_bytes(b"PK half a zip")
    with open_model(src):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.keras"]


@pytest.mark.parametrize(
    ("kind", "out", "claimed"),
    [("keras", "out.h5", ".h5"), ("keras", "out.weights.h5", ".weights.h5"), ("h5", "x.keras", ".keras"),
     ("h5", "x.weights.h5", ".weights.h5"), ("keras", "x.H5", ".h5"), ("h5", "x.index", ".index"),
     ("keras", "x.pb", ".pb")],
)  # fmt: skip
def test_save_refuses_another_formats_extension(demo_paths, tmp_path, kind, out, claimed):
    with open_model(demo_paths[kind]) as m:
        own = m.format
        with pytest.raises(FormatError) as exc:
            save_model(m, {}, tmp_path / out)
    text = str(exc.value)
    assert text.startswith(str(tmp_path / out) + ":"), text
    assert f"under a {claimed} name" in text and "does not convert" in text
    assert (".keras" if own == "keras" else ".h5") in text.rpartition("use a name ending in")[2]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("kind", "out"), [("keras", "x.keras"), ("keras", "x.keras.bak"), ("h5", "x.hdf5"),
                                           ("h5", "x.h5"), ("h5", "noextension")])  # fmt: skip
def test_save_allows_own_and_unclaimed_extensions(demo_paths, tmp_path, kind, out):
    with open_model(demo_paths[kind]) as m:
        save_model(m, {}, tmp_path / out)
    with open_model(tmp_path / out) as again:
        assert again.format == m.format


def test_previous_folder_moved_aside_by_a_killed_swap_is_put_back(tmp_path, dead_pid):
    aside = _stale(tmp_path, "sm", dead_pid, ".old")
    aside.mkdir()
    (aside / "saved_model.pb").write_bytes(b"previous")
    assert remove_stale_temps(tmp_path) == []  # restored, not removed
    assert [p.name for p in tmp_path.iterdir()] == ["sm"]
    assert (tmp_path / "sm" / "saved_model.pb").read_bytes() == b"previous"
    # Killed after the new folder took the name: the previous one is a leftover.
    aside.mkdir()
    assert remove_stale_temps(tmp_path) == [aside]
    assert (tmp_path / "sm" / "saved_model.pb").read_bytes() == b"previous"


def test_cli_apply_keras_to_h5_name_is_refused(demo_paths, tmp_path):
    """The reported case: ``apply model.keras r.json -o out.h5`` wrote a zip named .h5."""
    recipe = tmp_path / "r.json"
    recipe.write_text('{"version": 1, "edits": [{"op": "scale", "target": "dense/kernel", "factor": 2}]}')
    r = subprocess.run(
        [sys.executable, "-m", "weightlab", "apply", str(demo_paths["keras"]), str(recipe), "-o", str(tmp_path / "out.h5")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert (
        r.stderr.strip()
        .splitlines()[-1]
        .startswith(f"weightlab: error: {tmp_path / 'out.h5'}: cannot save a Keras")
    )
    assert "use a name ending in .keras" in r.stderr and "Traceback" not in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]
