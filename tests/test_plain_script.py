"""A plain script (no ``if __name__ == "__main__":`` guard) can start WeightLab's child processes.

``multiprocessing``'s spawn start method re-imports the parent's main script
in each child; the engine worker and the TensorFlow reader must not, or an
unguarded script runs again in the child and its process starts fail
(``weightlab/engine/spawn.py``, ``_caller_main_hidden``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from tinytf import write_tiny_tf_formats

ROOT = Path(__file__).resolve().parents[1]

#: Counts its own top-level runs in argv[1], then talks to both children.
SCRIPT = textwrap.dedent(
    """
    import sys, threading
    with open(sys.argv[1], "a") as f:
        f.write("ran\\n")

    from weightlab.core.errors import FormatError
    from weightlab.engine.client import EngineClient
    from weightlab.engine.events import Crashed, Ready
    from weightlab.engine.reader import TFReaderProcess

    # the TensorFlow reader: a round trip through the child (a missing checkpoint)
    reader = TFReaderProcess(sys.argv[2])
    try:
        reader.list("checkpoint", sys.argv[2])
    except FormatError as e:
        print("reader answered:", str(e).splitlines()[0][:60])
    finally:
        reader.close()

    # the engine worker: it must come up and say Ready
    ready = threading.Event()
    events = []
    def on_event(ev):
        events.append(ev)
        if isinstance(ev, (Ready, Crashed)):
            ready.set()
    client = EngineClient(on_event)
    client.start()
    ready.wait(120)
    client.shutdown()
    print("engine:", type(events[0]).__name__ if events else "nothing")
    print("main module:", __spec__, __file__ == sys.argv[0])
    """
)


@pytest.mark.slow
def test_an_unguarded_script_runs_once_and_both_children_answer(tmp_path):
    script = tmp_path / "plain.py"
    script.write_text(SCRIPT)
    runs = tmp_path / "runs.txt"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run(
        [sys.executable, str(script), str(runs), str(tmp_path / "no-such-ckpt")],
        capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert runs.read_text() == "ran\n", "the script's top level ran again in a child process"
    assert "reader answered:" in out.stdout, out.stdout
    assert "engine: Ready" in out.stdout, out.stdout + out.stderr[-3000:]
    # the caller's __main__ is put back as it was after each start
    assert "main module: None True" in out.stdout, out.stdout


# -- weightlab.open from a plain script: a SavedModel and a frozen graph -----------------------

#: Opens both TensorFlow formats through the public API, no guard; counts its own top-level runs.
OPEN_SCRIPT = textwrap.dedent(
    """
    import sys
    with open(sys.argv[1], "a") as f:
        f.write("ran\\n")

    import numpy as np
    import weightlab

    for path, name in ((sys.argv[2], "dense/kernel"), (sys.argv[3], "fc/kernel")):
        s = weightlab.open(path)
        k = s.array(name)
        print(s.model.format, name, k.shape, float(np.sum(k)))
        s.model.close()
    """
)


@pytest.fixture(scope="module")
def tf_files(tmp_path_factory) -> dict[str, Path]:
    """A SavedModel folder (``dense/kernel`` = 0..11) and a frozen GraphDef (``fc/kernel`` = ones)."""
    pytest.importorskip("tensorflow")
    made = write_tiny_tf_formats(tmp_path_factory.mktemp("plain_tf"))
    return {"savedmodel": made["savedmodel"], "graphdef": made["graphdef"] / "frozen.pb"}


def _run_script(tmp_path: Path, text: str, *args: str, extra_path: str = "") -> subprocess.CompletedProcess:
    script = tmp_path / "plain_open.py"
    script.write_text(text)
    parts = [p for p in (extra_path, str(ROOT), os.environ.get("PYTHONPATH", "")) if p]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(parts)}
    return subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path
    )


@pytest.mark.slow
def test_an_unguarded_script_opens_a_saved_model_and_a_frozen_graph(tmp_path, tf_files):
    runs = tmp_path / "runs.txt"
    out = _run_script(tmp_path, OPEN_SCRIPT, str(runs), str(tf_files["savedmodel"]), str(tf_files["graphdef"]))
    assert out.returncode == 0, out.stderr[-3000:]
    assert runs.read_text() == "ran\n", "the script's top level ran again in a child process"
    lines = out.stdout.splitlines()
    assert lines == ["savedmodel dense/kernel (4, 3) 66.0", "graphdef fc/kernel (4, 3) 12.0"], out.stdout
    assert "bootstrapping" not in out.stderr and "damaged" not in out.stderr


@pytest.mark.slow
def test_a_reader_that_cannot_start_says_why_not_that_the_file_is_damaged(tmp_path, tf_files):
    """A TensorFlow that fails to import in the child is named as the reason."""
    fake = tmp_path / "fake"
    (fake / "tensorflow").mkdir(parents=True)
    (fake / "tensorflow" / "__init__.py").write_text('raise ImportError("simulated broken TensorFlow install")\n')
    text = textwrap.dedent(
        """
        import sys
        import weightlab
        try:
            weightlab.open(sys.argv[1])
        except weightlab.FormatError as e:
            print("error:", e)
        """
    )
    out = _run_script(tmp_path, text, str(tf_files["savedmodel"]), extra_path=str(fake))
    assert out.returncode == 0, out.stderr[-3000:]
    assert "could not start" in out.stdout and "simulated broken TensorFlow install" in out.stdout, out.stdout
    assert "damaged" not in out.stdout
    assert str(tf_files["savedmodel"]) in out.stdout or "sm" in out.stdout
