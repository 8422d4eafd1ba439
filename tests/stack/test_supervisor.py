"""Restart decisions (pure, fake clock) and the supervisor against real short-lived processes."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import pytest

from newswatch.stack.supervisor import (ChildEvent, ChildHistory, ChildSpec, RestartPolicy, Supervisor,
                                        decide_restart, describe_exit)

POLICY = RestartPolicy(initial=1.0, factor=2.0, maximum=30.0, stable_after=60.0)


@pytest.mark.parametrize("failures_before, ran_for, code, want_delay, want_failures, want_reason", [
    (0, 0.5, 1, 1.0, 1, "crashed"),     # first crash: initial delay
    (1, 0.5, 1, 2.0, 2, "crashed"),     # crash loop: doubles
    (4, 0.5, 1, 16.0, 5, "crashed"),
    (5, 0.5, 1, 30.0, 6, "crashed"),    # capped at maximum
    (20, 0.5, -9, 30.0, 21, "crashed"),
    (7, 61.0, 1, 1.0, 1, "crashed"),    # was stable for a minute: backoff starts over
    (0, 5.0, 0, 1.0, 1, "exited"),      # a stage that exits on its own is restarted too
])
def test_backoff_table(failures_before, ran_for, code, want_delay, want_failures, want_reason):
    history = ChildHistory(started_at=100.0, restarts=3, consecutive_failures=failures_before)
    decision = decide_restart(POLICY, history, code, now=100.0 + ran_for, stopping=False)
    assert decision.restart
    assert decision.delay == want_delay
    assert decision.reason == want_reason
    assert decision.history.consecutive_failures == want_failures
    assert decision.history.restarts == 4


def test_no_restart_while_stopping():
    decision = decide_restart(POLICY, ChildHistory(started_at=0.0), 1, now=1.0, stopping=True)
    assert not decision.restart and decision.reason == "stopping"


@pytest.mark.parametrize("code, text", [(0, "exit code 0"), (3, "exit code 3"), (-9, "killed by SIGKILL"),
                                        (-15, "killed by SIGTERM")])
def test_describe_exit(code, text):
    assert describe_exit(code) == text


# A child that ignores SIGTERM, as a stuck stage would.
STUBBORN = ("import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "print('ready', flush=True)\ntime.sleep(600)\n")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as handle:
        return handle.read().rsplit(")", 1)[1].split()[0] != "Z"


async def _wait_for(condition, timeout: float, what: str):
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out: {what}")
        await asyncio.sleep(0.02)


async def test_dead_child_is_reported_and_restarted_and_stop_kills_its_workers(tmp_path):
    events: list[ChildEvent] = []
    # The child spawns a grandchild (a "worker") in its process group, then waits.
    script = ("import subprocess, sys, time\n"
              "w = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
              "print('worker', w.pid, flush=True)\n"
              "time.sleep(600)\n")
    spec = ChildSpec("sleeper", (sys.executable, "-c", script), log_path=tmp_path / "sleeper.log")
    supervisor = Supervisor([spec], on_event=events.append,
                            policy=RestartPolicy(initial=0.05, maximum=0.05), stop_timeout=5)
    await supervisor.start()
    first = supervisor.pids()["sleeper"]
    log = tmp_path / "sleeper.log"
    await _wait_for(lambda: log.exists() and "worker" in log.read_text(), 10, "first worker")
    os.kill(first, signal.SIGKILL)
    await _wait_for(lambda: supervisor.pids()["sleeper"] != first, 10, "restart after SIGKILL")
    crashed = [e for e in events if e.kind == "crashed"]
    assert crashed and crashed[0].pid == first and "SIGKILL" in crashed[0].detail
    await _wait_for(lambda: (tmp_path / "sleeper.log").read_text().count("worker") >= 2, 10, "second worker")
    workers = [int(line.split()[1]) for line in (tmp_path / "sleeper.log").read_text().splitlines()
               if line.startswith("worker")]
    second = supervisor.pids()["sleeper"]
    await supervisor.stop()
    assert [e.kind for e in events if e.name == "sleeper"][-1] == "stopped"
    for pid in [first, second, *workers]:
        await _wait_for(lambda: not _alive(pid), 10, f"pid {pid} gone")


async def test_child_ignoring_sigterm_is_killed_after_the_deadline(tmp_path):
    events: list[ChildEvent] = []
    script = STUBBORN
    spec = ChildSpec("stubborn", (sys.executable, "-c", script), log_path=tmp_path / "stubborn.log")
    supervisor = Supervisor([spec], on_event=events.append, stop_timeout=0.5)
    await supervisor.start()
    await _wait_for(lambda: "ready" in (tmp_path / "stubborn.log").read_text(), 10, "child ready")
    pid = supervisor.pids()["stubborn"]
    await supervisor.stop()
    assert any(e.kind == "killed" for e in events)
    assert not _alive(pid)


def test_tail_lines_shows_only_the_latest_runs_output(tmp_path):
    from newswatch.stack.supervisor import tail_lines

    log = tmp_path / "x.log"
    log.write_text("old 1\nold 2\n")
    offset = log.stat().st_size
    with log.open("a") as handle:
        handle.write("new 1\nnew 2\nnew 3\n")
    assert tail_lines(log, count=2, since=offset) == "new 2\nnew 3"
    assert tail_lines(log, count=10, since=offset) == "new 1\nnew 2\nnew 3"
    assert tail_lines(tmp_path / "missing.log") == ""


def test_children_die_with_a_supervisor_that_is_killed_outright(tmp_path):
    """SIGKILL to the supervising process (no chance to clean up) still ends its children."""
    import subprocess
    import time

    script = f"""
import asyncio, sys
from pathlib import Path
from newswatch.stack.supervisor import ChildSpec, Supervisor
async def main():
    sleeper = "import os, time; print(os.getpid(), flush=True); time.sleep(600)"
    spec = ChildSpec("sleeper", (sys.executable, "-c", sleeper),
                     log_path=Path({str(tmp_path / "child.log")!r}))
    await Supervisor([spec], on_event=lambda e: None).start()
    await asyncio.sleep(600)
asyncio.run(main())
"""
    parent = subprocess.Popen([sys.executable, "-c", script])
    log = tmp_path / "child.log"
    deadline = time.monotonic() + 20
    while not (log.exists() and log.read_text().strip()):
        assert time.monotonic() < deadline and parent.poll() is None, "child never started"
        time.sleep(0.05)
    child = int(log.read_text().split()[0])
    assert _alive(child)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while _alive(child):
        assert time.monotonic() < deadline, f"child {child} outlived its SIGKILLed supervisor"
        time.sleep(0.05)


async def test_kill_now_ends_a_stop_that_would_wait_for_a_stubborn_child(tmp_path):
    script = STUBBORN
    spec = ChildSpec("stubborn", (sys.executable, "-c", script), log_path=tmp_path / "stubborn.log")
    supervisor = Supervisor([spec], on_event=lambda e: None, stop_timeout=60)
    await supervisor.start()
    await _wait_for(lambda: "ready" in (tmp_path / "stubborn.log").read_text(), 10, "child ready")
    stopping = asyncio.create_task(supervisor.stop())
    await asyncio.sleep(0.2)
    assert not stopping.done()          # SIGTERM is ignored; stop() would wait up to 60 s
    supervisor.kill_now()
    await asyncio.wait_for(stopping, 10)
    assert not _alive(supervisor.pids()["stubborn"])
