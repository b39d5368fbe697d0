"""The wall around TensorFlow (issue 10): child entry points named by string, TensorFlow's environment set once.

import-linter checks the static side (``pyproject.toml``); these tests check
what it cannot see: the strings that name the child processes' entry points,
what importing the TensorFlow-free side loads at run time, and the
environment the wall sets before TensorFlow is imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from weightlab.engine import spawn

ROOT = Path(__file__).resolve().parents[1]


def run_python(code: str, **env_changes: str | None) -> str:
    """Run ``code`` in a fresh interpreter with the environment changed as given (None: removed); its stdout."""
    env = dict(os.environ)
    for key, value in env_changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_every_child_entry_point_lies_inside_the_wall_and_resolves():
    assert set(spawn.ENTRY_POINTS) == {spawn.WORKER, spawn.READER}
    code = (
        "import json, sys\n"
        "from weightlab.engine import spawn\n"
        "out = {}\n"
        "for entry in spawn.ENTRY_POINTS:\n"
        "    fn = spawn.resolve(entry)\n"
        "    out[entry] = [fn.__module__, fn.__name__]\n"
        "out['tensorflow'] = 'tensorflow' in sys.modules\n"
        "print(json.dumps(out))\n"
    )
    got = json.loads(run_python(code))
    for entry in spawn.ENTRY_POINTS:
        module, name = entry.split(":")
        assert module.startswith("weightlab._tf.")
        assert got[entry] == [module, name]
    # The entry points import TensorFlow when they run (after capturing the child's output), not on import.
    assert got["tensorflow"] is False


@pytest.mark.parametrize("entry", ["os:system", "weightlab._tf.tfio:save", "weightlab._tf.worker:lower_priority"])
def test_only_the_named_entry_points_can_be_started(entry):
    with pytest.raises(ValueError, match="unknown child process entry point"):
        spawn.resolve(entry)


def test_the_tensorflow_free_side_loads_nothing_of_the_wall():
    """What the window's process imports (engine clients, every format, the public API) stays outside ``_tf``."""
    code = (
        "import json, sys\n"
        "import weightlab, weightlab.cli, weightlab.edits\n"
        "import weightlab.engine, weightlab.engine.client, weightlab.engine.reader, weightlab.engine.spawn\n"
        "import weightlab.engine.graph_safety, weightlab.engine.scoring, weightlab.engine.quiet\n"
        "import weightlab.formats, weightlab.formats.tf_formats\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('weightlab._tf', 'tensorflow', 'keras', "
        "'tf_keras')))))\n"
    )
    assert json.loads(run_python(code)) == []


def test_the_tensorflow_formats_are_listed_statically():
    from weightlab import formats
    from weightlab.formats import tf_formats

    assert [f.name for f in formats.FORMATS] == ["keras", "h5", "weights.h5", "savedmodel", "checkpoint", "graphdef"]
    assert formats.TF_FORMATS == (tf_formats.SAVEDMODEL, tf_formats.CHECKPOINT, tf_formats.GRAPHDEF)
    assert formats.get_format("checkpoint") is tf_formats.CHECKPOINT
    assert not hasattr(formats, "register")


ENV_PROBE = "import os, weightlab._tf\nprint(repr(os.environ.get('TF_CPP_MIN_LOG_LEVEL')))\n"


def test_the_wall_quiets_tensorflow_before_it_is_imported():
    assert run_python(ENV_PROBE, TF_CPP_MIN_LOG_LEVEL=None, WEIGHTLAB_DEBUG=None).strip() == "'2'"


def test_the_wall_keeps_the_users_log_level():
    assert run_python(ENV_PROBE, TF_CPP_MIN_LOG_LEVEL="1", WEIGHTLAB_DEBUG=None).strip() == "'1'"


def test_verbose_mode_leaves_tensorflows_log_level_alone():
    assert run_python(ENV_PROBE, TF_CPP_MIN_LOG_LEVEL=None, WEIGHTLAB_DEBUG="1").strip() == "None"


def test_the_tensorflow_free_side_sets_no_tensorflow_environment():
    """Importing and using the modules outside the wall leaves ``TF_CPP_MIN_LOG_LEVEL`` unset."""
    code = (
        "import os, weightlab, weightlab.cli, weightlab.formats, weightlab.engine\n"
        "from weightlab.engine import quiet\n"
        "quiet.set_verbose(False); quiet.quiet_libraries()\n"
        "print(repr(os.environ.get('TF_CPP_MIN_LOG_LEVEL')))\n"
    )
    assert run_python(code, TF_CPP_MIN_LOG_LEVEL=None, WEIGHTLAB_DEBUG=None).strip() == "None"


def test_tensorflows_environment_is_written_in_one_place():
    """Only ``weightlab/_tf/__init__.py`` names TensorFlow's environment variables in code."""
    writers = []
    for path in sorted((ROOT / "weightlab").rglob("*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            if "environ" in code and "TF_" in code:
                writers.append(f"{path.relative_to(ROOT)}:{number}")
    assert writers and all(w.startswith(os.path.join("weightlab", "_tf", "__init__.py")) for w in writers), writers
