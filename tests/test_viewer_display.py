"""weightlab.show where Qt's platform plugin cannot load: NoDisplayError, never an aborted process (G13 finding 1).

Qt aborts the whole process when its platform plugin fails ("Could not load
the Qt platform plugin ... Aborted"), which kills a notebook's kernel. Each
case runs a script in a child process with an environment that makes the
plugin fail: the script must get NoDisplayError (naming the platform and
what Qt said), exit normally, and leave no temporary folder behind.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(
    """
    import numpy as np
    import weightlab
    from weightlab import viewer

    x = np.zeros((4, 3), "float32"); y = np.zeros(4, "int64")
    for attempt in range(2):
        try:
            weightlab.show("model-that-is-never-opened.keras", data=(x, y))
        except viewer.NoDisplayError as e:
            print("NoDisplayError:", e)
        else:
            print("NO ERROR")
    print("probes:", len(viewer._PROBED))
    print("survived")
    """
)


@pytest.mark.parametrize(
    ("env", "platform"),
    [
        ({"QT_QPA_PLATFORM": "xcb", "DISPLAY": ":987"}, "xcb"),  # no X server there
        ({"QT_QPA_PLATFORM": "nosuchplatform"}, "nosuchplatform"),  # no such plugin
    ],
    ids=["xcb-no-server", "unknown-plugin"],
)
def test_show_raises_instead_of_aborting(tmp_path, env, platform):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    child_env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY")}
    child_env.update(env, TMPDIR=str(tmp), PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=child_env, capture_output=True, text=True,
                          timeout=120, cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "survived" in out and "NO ERROR" not in out, out
    assert out.count("NoDisplayError:") == 2, out
    assert f"platform plugin ({platform})" in out, out
    assert "QT_QPA_PLATFORM=offscreen" in out
    if platform == "xcb":
        assert "libxcb-cursor0" in out and "libxcb-icccm4" in out and "libxcb-keysyms1" in out
    assert "probes: 1" in out, out  # the second show() reused the first probe's answer
    assert list(tmp.iterdir()) == [], "show() left a temporary folder behind"


def test_probe_passes_with_a_working_platform(monkeypatch):
    """The offscreen plugin loads: the probe answers None (in a child; this process's own app is not consulted)."""
    from weightlab import viewer

    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    monkeypatch.setattr(viewer, "_PROBED", {})
    monkeypatch.setitem(sys.modules, "PySide6.QtWidgets", None)  # as if no QApplication ran here
    assert viewer.qt_platform_problem() is None
    assert list(viewer._PROBED.values()) == [None]
