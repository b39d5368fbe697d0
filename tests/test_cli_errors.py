"""The ``weightlab`` command's failures (issue 9): one line, the right status, nothing written.

A failure caused by a file, recipe, held-out set or graph prints exactly one
line naming the file and exits 2; anything unexpected prints one line and
exits 1 (``--verbose`` shows the traceback); output cut short by a pipe ends
quietly with status 141, as a Unix tool killed by SIGPIPE.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from weightlab import cli
from weightlab.core.errors import FormatError

TIMEOUT = 240.0
ENV = {**{k: v for k, v in os.environ.items() if k != "WEIGHTLAB_DEBUG"}, "QT_QPA_PLATFORM": "offscreen"}


def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "weightlab", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=ENV,
    )


def one_line(res: subprocess.CompletedProcess[str]) -> str:
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    return lines[0]


@pytest.fixture(scope="module")
def recipes(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("recipes")
    deep = root / "deep.json"
    deep.write_text('{"version": 1, "edits": ' + "[" * 100_000 + "]" * 100_000 + "}")
    huge = root / "huge-number.json"
    huge.write_text(
        '{"version": 1, "edits": [{"op": "scale", "target": "conv2d/kernel", "factor": ' + "9" * 5000 + "}]}"
    )
    return {"deep": deep, "huge": huge}


@pytest.mark.parametrize("recipe", ["deep", "huge"])
@pytest.mark.parametrize("command", ["eval", "apply", "export"])
def test_a_bad_recipe_is_one_line_and_writes_nothing(demo_paths, recipes, tmp_path, command, recipe):
    path = recipes[recipe]
    out = tmp_path / ("out.npy" if command == "export" else "out.keras")
    args = {
        "eval": ["eval", demo_paths["keras"], "--data", demo_paths["data"], "--recipe", path],
        "apply": ["apply", demo_paths["keras"], path, "-o", out],
        "export": ["export", demo_paths["keras"], "--tensor", "conv2d/kernel", "-o", out, "--recipe", path],
    }[command]
    res = run_cli(*args)
    assert res.returncode == 2
    line = one_line(res)
    assert line.startswith("weightlab: error: ") and path.name in line
    assert len(line) < 400  # the 5,000 digits are not echoed back
    assert res.stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_a_graph_that_fails_at_run_time_is_one_line(tmp_path):
    import tensorflow as tf

    # A frozen graph whose reshape does not fit the batch (4 -> 3 values per sample, reshaped by 5).
    with tf.Graph().as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="x")
        w = tf.constant(np.ones((4, 3), np.float32), name="w")
        tf.identity(tf.reshape(tf.matmul(x, w), [-1, 5]), name="y")
        graph = tf.compat.v1.get_default_graph().as_graph_def()
    model = tmp_path / "bad-reshape.pb"
    model.write_bytes(graph.SerializeToString())
    data = tmp_path / "heldout.npz"
    np.savez(data, x=np.ones((32, 4), np.float32), y=np.zeros(32, np.int64))
    res = run_cli("eval", model, "--data", data)
    assert res.returncode == 2
    line = one_line(res)
    assert line.startswith(f"weightlab: error: {model}: ")
    assert "Input to reshape is a tensor with 96 values" in line


def test_output_closed_early_ends_quietly(demo_paths):
    proc = subprocess.Popen(
        [sys.executable, "-m", "weightlab", "inspect", demo_paths["keras"], "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=ENV,
    )
    proc.stdout.close()  # as `| head` does once it has its lines; here before the first one
    try:
        _, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert err.decode() == ""
    assert proc.returncode == cli.EXIT_BROKEN_PIPE == 141


# -- in-process: what main() makes of each kind of failure ----------------------------------------


@pytest.fixture
def failing_inspect(monkeypatch):
    """Make ``weightlab inspect`` raise the exception the test puts in the list."""
    raised: list[BaseException] = []

    def boom(args):
        raise raised[0]

    monkeypatch.setattr(cli, "cmd_inspect", boom)
    # main() sets WEIGHTLAB_DEBUG for --verbose and quiets the libraries' loggers: undo both afterwards.
    monkeypatch.setenv("WEIGHTLAB_DEBUG", "")
    loggers = [logging.getLogger(name) for name in ("tensorflow", "absl", "keras", "tf_keras", "h5py")]
    levels = [logger.level for logger in loggers]
    yield raised
    for logger, level in zip(loggers, levels):
        logger.setLevel(level)


def test_user_error_is_one_line_with_status_2(failing_inspect, capfd):
    failing_inspect.append(FormatError("not a model:\nline two", "m.keras"))
    assert cli.main(["inspect", "m.keras"]) == 2
    out, err = capfd.readouterr()
    assert out == ""
    assert err == "weightlab: error: m.keras: not a model: line two\n"


def test_unexpected_error_is_one_line_with_status_1(failing_inspect, capfd):
    failing_inspect.append(RuntimeError("something\nbroke"))
    assert cli.main(["inspect", "m.keras"]) == 1
    out, err = capfd.readouterr()
    assert err == "weightlab: internal error: RuntimeError: something broke (run with --verbose for the traceback)\n"


def test_verbose_shows_the_traceback(failing_inspect, capfd, monkeypatch):
    failing_inspect.append(RuntimeError("something broke"))
    with pytest.raises(RuntimeError, match="something broke"):
        cli.main(["inspect", "m.keras", "--verbose"])
    monkeypatch.setenv("WEIGHTLAB_DEBUG", "")  # set by --verbose for the child processes
    failing_inspect[0] = FormatError("not a model", "m.keras")
    assert cli.main(["--verbose", "inspect", "m.keras"]) == 2
    _, err = capfd.readouterr()
    assert "Traceback (most recent call last)" in err
    assert err.endswith("weightlab: error: m.keras: not a model\n")


def test_a_broken_pipe_that_is_not_stdout_is_an_error(failing_inspect, capfd):
    # stdout is still open (pytest's capture file): the pipe that broke was another one.
    failing_inspect.append(BrokenPipeError(32, "Broken pipe"))
    assert cli.main(["inspect", "m.keras"]) == 1
    _, err = capfd.readouterr()
    assert err.startswith("weightlab: error: a pipe to a child process broke")
    assert len(err.splitlines()) == 1
