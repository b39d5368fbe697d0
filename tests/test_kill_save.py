"""SIGKILL at random moments of a save (issue 9, findings 1 and 5).

``weightlab apply SRC recipe -o OUT`` runs in its own process group; once its
first temporary entry appears beside ``OUT`` (polled), the whole group
(the command and its TensorFlow reader process) is killed with SIGKILL after a
random delay drawn from a seeded generator over the measured length of a save
(the first kill of each case at once, so at least one lands inside the save).
After every kill: the source is byte-identical, ``OUT`` is either its previous
content or the complete new output (never partial), and nothing but
WeightLab's recognisable temporary names is left; the next run in the folder
removes those leftovers.

Fixtures (a ~50 MB Keras 3 model as ``.keras`` and ``.h5``, and a SavedModel)
are written by Keras in a child process, so this process never imports
TensorFlow.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from weightlab.core.atomic import TEMP_MARK, remove_stale_temps

pytestmark = pytest.mark.skipif(not hasattr(os, "killpg"), reason="POSIX process groups")
if importlib.util.find_spec("keras") is None:  # not importorskip: this process stays free of TensorFlow
    pytest.skip("needs Keras to write the fixtures", allow_module_level=True)

SEED = 20261124
RECIPE = '{"version": 1, "edits": [{"op": "scale", "target": "%s", "factor": 0.5}]}'
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}

_MAKE = r"""
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import keras
keras.utils.set_random_seed(0)
def model(width, depth):
    layers = [keras.layers.Dense(width, name=f"d{i}") for i in range(depth)]
    return keras.Sequential([keras.Input((width,)), *layers, keras.layers.Dense(10, name="head")], name="net")
big = model(2048, 3)  # 12.6 M parameters: 50 MB
root = sys.argv[1]
big.save(os.path.join(root, "big.keras"))
big.save(os.path.join(root, "big.h5"))
model(512, 3).export(os.path.join(root, "sm"), verbose=False)
"""


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("kill-src")
    r = subprocess.run(
        [sys.executable, "-c", _MAKE, str(root)], capture_output=True, text=True, env=ENV, timeout=300
    )
    assert r.returncode == 0, r.stderr[-3000:]
    (root / "r.json").write_text(RECIPE % "d1/kernel")
    (root / "r-sm.json").write_text(RECIPE % "net/d1/kernel")
    return root


def _digest(path: Path) -> str:
    """sha256 of a file, or of a folder's ``(relative path, content)`` pairs.

    A SavedModel's ``fingerprint.pb`` counts by name only: TensorFlow puts a
    random UUID in each one it computes.
    """
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        h.update(str(f.relative_to(path) if f != path else "").encode() + b"\0")
        if f.name == "fingerprint.pb" and f != path:
            continue
        with open(f, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()


def _temps(folder: Path) -> list[str]:
    return sorted(n for n in os.listdir(folder) if TEMP_MARK in n)


def _start(src: Path, recipe: Path, out: Path) -> subprocess.Popen:
    with open(out.parent.parent / "stderr.txt", "wb") as log:  # beside the work folder
        return subprocess.Popen(
            [sys.executable, "-m", "weightlab", "apply", str(src), str(recipe), "-o", str(out)],
            stdout=subprocess.DEVNULL,
            stderr=log,
            env=ENV,
            start_new_session=True,  # its own process group: the reader process dies with it
        )


def _finish(proc: subprocess.Popen, out: Path) -> None:
    code = proc.wait(240)
    assert code == 0, (out.parent.parent / "stderr.txt").read_text(errors="replace")[-3000:]


def _poll(proc: subprocess.Popen, done, what: str, timeout: float = 240.0) -> float:
    """Poll until ``done()`` (or the command ends); the time it happened."""
    deadline = time.monotonic() + timeout
    while not done() and proc.poll() is None:
        if time.monotonic() > deadline:
            _kill(proc)
            pytest.fail(f"{what} not within {timeout} s")
        time.sleep(0.0005)  # polling interval, not a synchronisation delay
    return time.monotonic()


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(30)


def _previous(src: Path, out: Path) -> None:
    """Give ``out`` a previous content: a copy of the source."""
    if out.is_dir():
        shutil.rmtree(out)
    elif out.exists():
        out.unlink()
    if src.is_dir():
        shutil.copytree(src, out)
    else:
        shutil.copyfile(src, out)


@pytest.mark.parametrize(("name", "kills"), [("big.keras", 6), ("big.h5", 6), ("sm", 2)])
def test_sigkill_during_save_loses_nothing_and_leaves_nothing(sources, tmp_path, name, kills):
    rng = random.Random(f"{SEED}-{name}")
    src, recipe = sources / name, sources / ("r-sm.json" if name == "sm" else "r.json")
    src_digest = _digest(src)
    work = tmp_path / "work"
    work.mkdir()
    out = work / f"out{src.suffix}"
    _previous(src, out)
    previous = _digest(out)

    # Saves that run to the end: the complete output, and how long the save itself lasts
    # (from its first temporary entry until the output is in place and no temporary is
    # left). The shorter of two: the first save of a run reads a cold page cache and can
    # take several times longer than the ones killed below.
    windows = []
    for _ in range(2):
        proc = _start(src, recipe, out)
        began = _poll(proc, lambda: _temps(work), "the first temporary entry")
        ended = _poll(proc, lambda: not _temps(work), "the end of the save")
        _finish(proc, out)
        windows.append(ended - began)
        complete = _digest(out)
        assert complete != previous and _temps(work) == []
        _previous(src, out)
    window = min(windows)

    outcomes = {"before the rename": 0, "after the rename": 0, "mid-swap": 0, "with leftovers": 0}
    for trial in range(kills):
        old = set(_temps(work))  # leftovers of the trial before, removed when this save starts
        proc = _start(src, recipe, out)
        _poll(proc, lambda old=old: set(_temps(work)) - old, "the first temporary entry")
        # The moment under test: the first trial as soon as the save's first temporary
        # entry exists (inside the save by construction), the others at seeded random
        # delays over the save's length and a little past it.
        time.sleep(0.0 if trial == 0 else rng.uniform(0.0, window * 1.2))
        _kill(proc)
        assert _digest(src) == src_digest, "the source changed"
        if not out.exists():  # killed between the two renames of a folder swap: the next run puts it back
            outcomes["mid-swap"] += 1
            remove_stale_temps(work)
        assert out.exists(), "the previous output was lost"
        got = _digest(out)
        assert got in (previous, complete), "partial output at the target"
        outcomes["before the rename" if got == previous else "after the rename"] += 1
        others = sorted(set(os.listdir(work)) - {out.name})
        assert all(TEMP_MARK in n for n in others), others
        outcomes["with leftovers"] += bool(others)
        if got == complete:
            _previous(src, out)
    print(f"\n{name}: {kills} SIGKILLs (seed {SEED}), save lasts {window * 1000:.0f} ms: {outcomes}")

    # The next run removes what the killed ones left, and writes the complete output.
    proc = _start(src, recipe, out)
    _finish(proc, out)
    assert os.listdir(work) == [out.name]
    assert _digest(out) == complete
    assert _digest(src) == src_digest
    assert outcomes["before the rename"] >= 1, f"no kill landed during a save: {outcomes}"
