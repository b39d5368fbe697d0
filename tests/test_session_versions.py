"""Per-tensor versions of an EditSession (what the engine client mirrors)."""

import numpy as np
from fakes import memory_session

from weightlab.edits import Scale


def _session():
    return memory_session(
        "m", {"a/kernel": np.arange(6, dtype=np.float32).reshape(2, 3), "b/kernel": np.ones((3, 2), np.float32)}
    )


def test_versions_change_with_every_change_of_current_values():
    s = _session()
    assert s.version("a/kernel") == 0 and s.edited_versions() == {}
    s.apply(Scale(target="a/kernel", factor=2.0))
    v1 = s.version("a/kernel")
    assert v1 > 0 and s.version("b/kernel") == 0
    (ver, arr), = s.edited_versions().values()
    assert ver == v1 and arr is s.array("a/kernel")
    s.apply(Scale(target="b/kernel", factor=3.0))
    assert s.version("a/kernel") == v1  # untouched by the second step
    s.undo()
    assert s.version("b/kernel") > v1 and list(s.edited_versions()) == ["a/kernel"]
    s.undo()
    v_orig = s.version("a/kernel")
    assert v_orig > v1 and s.edited_versions() == {}
    s.redo()
    assert s.version("a/kernel") > v_orig
    np.testing.assert_array_equal(s.edited_versions()["a/kernel"][1], np.arange(6).reshape(2, 3) * 2)


def test_switching_a_step_off_bumps_what_it_changed_and_equal_versions_mean_the_same_array():
    s = _session()
    s.apply(Scale(target="a/kernel", factor=2.0))
    s.apply(Scale(target="b/kernel", factor=3.0))
    vb = s.version("b/kernel")
    before = s.edited_versions()
    s.set_step_enabled(0, False)
    assert s.version("a/kernel") > vb and "a/kernel" not in s.edited_versions()
    after = s.edited_versions()
    # b/kernel was replayed: a new array gets a new version, a kept array keeps its version.
    assert (after["b/kernel"][0] == before["b/kernel"][0]) == (after["b/kernel"][1] is before["b/kernel"][1])


def test_versions_of_two_sessions_never_collide():
    a, b = _session(), _session()
    a.apply(Scale(target="a/kernel", factor=2.0))
    b.apply(Scale(target="a/kernel", factor=5.0))
    assert a.version("a/kernel") != b.version("a/kernel")
