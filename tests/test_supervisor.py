"""The one supervisor of the child processes: start, death, restart policy, stop, nothing left behind.

The child is the TensorFlow reader (a real ``spawn``-ed process; the tests end
or kill it before it has imported much). The conftest fixture fails a test
that leaves a child process running.
"""

from __future__ import annotations

import gc
import os
import signal

import pytest

from weightlab.engine import spawn
from weightlab.engine.supervisor import ChildSupervisor, Death


def _supervisor(**kw) -> ChildSupervisor:
    return ChildSupervisor(spawn.READER, name="weightlab-test-child", label="test-child", goodbye=None, **kw)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX signals")
def test_restart_after_kill_then_stop_leaves_nothing():
    sup = _supervisor()
    try:
        conn = sup.start()
        first = sup.proc
        assert sup.alive and sup.pid == first.pid and conn is sup.conn
        with pytest.raises(RuntimeError, match="already started"):
            sup.start()
        os.kill(first.pid, signal.SIGKILL)
        death = sup.reap()
        assert death == Death(-signal.SIGKILL, death.last_words)
        assert death.how == "killed by signal 9" and not first.is_alive()
        assert sup.proc is None and not sup.alive and sup.pid is None
        assert sup.crashed()  # one crash: a restart is allowed
        sup.start()
        second = sup.proc
        assert sup.alive and second.pid != first.pid
        sup.stop(timeout=2.0)
        assert not second.is_alive() and second.exitcode is not None
        assert sup.proc is None and sup.conn is None
        sup.stop()  # idempotent
        with pytest.raises(OSError, match="not running"):
            sup.send(("list_location", ()))
    finally:
        sup.stop()


def test_give_up_after_too_many_crashes_in_the_window():
    sup = _supervisor(max_restarts=2, restart_window=10.0)
    assert [sup.crashed(now=t) for t in (0.0, 1.0)] == [True, True]
    assert not sup.crashed(now=2.0) and sup.crashes == 3  # the third within 10 s: give up
    assert sup.crashed(now=12.5) and sup.crashes == 1  # the old ones left the window
    sup.crashed(now=13.0)
    sup.forgive()
    assert sup.crashes == 0 and sup.crashed(now=13.5)


def test_death_descriptions():
    assert Death(1).how == "exit code 1" and Death(1).tail == ""
    assert Death(-11, "Fatal Python error").how == "killed by signal 11"
    assert Death(-11, "Fatal Python error").tail == "; last output: Fatal Python error"
    assert _supervisor().reap() == Death(None)  # nothing started: nothing to reap


def test_a_forgotten_supervisor_stops_its_child():
    sup = _supervisor()
    sup.start()
    proc = sup.proc
    del sup
    gc.collect()
    assert not proc.is_alive() and proc.exitcode is not None
