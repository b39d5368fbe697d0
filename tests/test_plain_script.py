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
