"""Quiet by default (issue 9): no TensorFlow, absl, oneDNN, CUDA or Keras lines on stderr.

The commands run as real subprocesses with a clean environment (no
``TF_CPP_MIN_LOG_LEVEL``, no ``WEIGHTLAB_DEBUG``): their stderr must be exactly
what WeightLab itself prints. ``--verbose``/``WEIGHTLAB_DEBUG=1`` shows the
libraries' lines, and a child process that dies is quoted in the error.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import weightlab
from weightlab.core.errors import FormatError
from weightlab.engine import quiet
from weightlab.engine.quiet import MAX_LINES, ChildOutput, install_child_output

TIMEOUT = 240.0
# What TensorFlow, absl, oneDNN, CUDA and Keras write: glog-style lines, absl's notice, Python warnings.
LIBRARY_LINE = re.compile(
    r"^[IWEF]\d{4} \d\d:\d\d|absl|oneDNN|cuda|cuInit|tensorflow|keras|Warning:", re.IGNORECASE
)


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without the variables that would hide the problem or change the mode."""
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", quiet.DEBUG_ENV)}
    env["QT_QPA_PLATFORM"] = "offscreen"
    env.update(extra)
    return env


def run_cli(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "weightlab", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=clean_env() if env is None else env,
    )


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """A Keras 3 model exported as a SavedModel, a Keras 2 Sequential .h5 and a held-out set."""
    import keras
    import tf_keras

    root = tmp_path_factory.mktemp("quiet")
    keras.utils.set_random_seed(3)
    inp = keras.Input((4,))
    out = keras.layers.Dense(3, activation="softmax")(keras.layers.Dense(8, activation="relu")(inp))
    keras.Model(inp, out).export(str(root / "sm"), verbose=False)
    # Keras 3 warns about input_shape when it rebuilds this (finding 6).
    k2 = tf_keras.Sequential(
        [tf_keras.layers.Dense(8, activation="relu", input_shape=(4,)), tf_keras.layers.Dense(3, activation="softmax")]
    )
    k2.save(root / "seq.k2.h5", save_format="h5")
    rng = np.random.default_rng(0)
    np.savez(root / "heldout.npz", x=rng.normal(size=(40, 4)).astype("float32"), y=rng.integers(0, 3, 40))
    np.savez(root / "wrong.npz", x=rng.normal(size=(40, 5)).astype("float32"), y=rng.integers(0, 3, 40))
    return {
        "sm": root / "sm",
        "k2": root / "seq.k2.h5",
        "data": root / "heldout.npz",
        "wrong": root / "wrong.npz",
    }


# -- the commands ------------------------------------------------------------------------------


def test_inspect_savedmodel_prints_nothing_on_stderr(models):
    res = run_cli("inspect", models["sm"])
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    assert "savedmodel" in res.stdout.splitlines()[0]


def test_eval_savedmodel_prints_nothing_on_stderr_unless_verbose(models):
    res = run_cli("eval", models["sm"], "--data", models["data"])
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    assert res.stdout.startswith("accuracy ")
    # The lines exist: verbose mode shows them (so the empty stderr above is the capture's doing).
    loud = run_cli("eval", models["sm"], "--data", models["data"], env=clean_env(WEIGHTLAB_DEBUG="1"))
    assert loud.returncode == 0, loud.stderr
    assert [line for line in loud.stderr.splitlines() if LIBRARY_LINE.search(line)]
    assert loud.stdout.splitlines()[0] == res.stdout.splitlines()[0]  # the same accuracy and loss


def test_eval_error_is_the_only_line_on_stderr(models):
    res = run_cli("eval", models["sm"], "--data", models["wrong"])
    assert res.returncode == 2
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("weightlab: error: ") and "wrong.npz" in lines[0]
    assert res.stdout == ""


def test_keras_warnings_stay_off_stderr_unless_verbose(models):
    res = run_cli("eval", models["k2"], "--data", models["data"], "--json")
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    loud = run_cli("eval", models["k2"], "--data", models["data"], "--json", "--verbose")
    assert loud.returncode == 0, loud.stderr
    assert "input_shape" in loud.stderr  # Keras' UserWarning, shown on request


def test_window_process_terminal_has_no_library_lines(demo_paths, tmp_path):
    shot = tmp_path / "shot.png"
    env = clean_env(WEIGHTLAB_CONFIG_DIR=str(tmp_path / "config"))
    res = run_cli("--demo", "--screenshot", shot, env=env)
    assert res.returncode == 0, res.stderr
    assert shot.stat().st_size > 0
    # Qt may say something about the offscreen platform; TensorFlow must say nothing.
    assert [line for line in res.stderr.splitlines() if LIBRARY_LINE.search(line)] == []


# -- the children ---------------------------------------------------------------------------------


def test_engine_worker_output_is_captured(demo_paths, capfd):
    from weightlab.engine import EngineClient, JobResult

    events: queue.Queue = queue.Queue()
    client = EngineClient(events.put)
    client.start()
    try:
        client.open(demo_paths["keras"], demo_paths["data"])
        deadline = time.monotonic() + TIMEOUT
        while True:
            event = events.get(timeout=max(0.0, deadline - time.monotonic()))
            if isinstance(event, JobResult):
                break
        assert event.result.baseline and event.result.metrics.num_samples > 0
    finally:
        client.shutdown()
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_engine_crash_quotes_the_workers_last_output():
    from weightlab.engine import Crashed, EngineClient, Ready

    events: queue.Queue = queue.Queue()
    client = EngineClient(events.put, max_restarts=0)
    client.start()
    try:
        deadline = time.monotonic() + TIMEOUT
        while not isinstance(events.get(timeout=max(0.0, deadline - time.monotonic())), Ready):
            pass
        os.kill(client.worker_pid, signal.SIGSEGV)
        while not isinstance(event := events.get(timeout=max(0.0, deadline - time.monotonic())), Crashed):
            pass
        assert event.exitcode == -signal.SIGSEGV
        assert "last output: Fatal Python error: Segmentation fault" in event.message
    finally:
        client.shutdown()


def test_reader_crash_quotes_the_readers_last_output(models):
    s = weightlab.open(models["sm"])
    try:
        name = next(iter(s.model.tensors.values())).name
        os.kill(s.model.attrs["_reader"].process.pid, signal.SIGSEGV)
        with pytest.raises(FormatError, match=r"last output: Fatal Python error: Segmentation fault"):
            s.model.read(name)
        assert s.model.read(name).size > 0  # a new reader took over
    finally:
        s.model.close()


def _chatty_child(handle, count: int) -> None:
    """A child that writes like TensorFlow (natively, to fd 1 and 2) and then dies."""
    install_child_output(handle)
    os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n")
    os.write(2, b"I0000 00:00:1795521138.858985    7006 port.cc:153] oneDNN custom operations are on.\n")
    for i in range(count):
        os.write(1 if i % 2 else 2, f"line {i}\n".encode())
    os.write(2, b"I0000 00:00:1795521138.859264    7006 cudart_stub.cc:31] Could not find cuda drivers\n")
    os.write(2, b"no newline at the end")
    os._exit(3)


@pytest.mark.parametrize("count", [5, MAX_LINES + 50])
def test_child_output_keeps_the_last_lines_off_the_terminal(capfd, count):
    import multiprocessing

    output = ChildOutput("test")
    proc = multiprocessing.get_context("spawn").Process(target=_chatty_child, args=(output.handle, count))
    proc.start()
    output.started()
    proc.join(TIMEOUT)
    assert proc.exitcode == 3
    assert output.last_words() == f"line {count - 2} | line {count - 1} | no newline at the end"
    kept = output.lines()
    assert len(kept) == min(count + 4, MAX_LINES)
    assert kept[-1] == "no newline at the end"
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_verbose_mode_captures_nothing(monkeypatch):
    monkeypatch.setenv(quiet.DEBUG_ENV, "1")
    assert quiet.is_verbose()
    output = ChildOutput("test")
    assert output.handle is None  # the child writes to the terminal
    output.started()
    output.join()
    assert output.last_words() == ""
    monkeypatch.setenv(quiet.DEBUG_ENV, "0")
    assert not quiet.is_verbose()
