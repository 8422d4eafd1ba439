"""A pytest run that is stopped with SIGTERM (or killed outright) does not leave its session
broker running. Runs a small pytest session in a child process with the real fixture and a real
broker, then stops that session."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

INNER = '''
import time
from pathlib import Path

from tests.conftest import kafka_bootstrap  # noqa: F401  (the session fixture under test)


def test_waits_to_be_stopped(kafka_bootstrap):
    Path(__file__).with_name("bootstrap.txt").write_text(kafka_bootstrap)
    time.sleep(600)
'''


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def _wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s: {what}")
        time.sleep(0.1)


@pytest.mark.integration
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_a_stopped_test_session_stops_its_broker(tmp_path, stop):
    (tmp_path / "test_inner.py").write_text(INNER)
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("NEWSWATCH_KAFKA_BOOTSTRAP", "CI")}
    env["TMPDIR"] = str(temp)  # where the fixture makes its broker's data directory
    with (tmp_path / "inner.log").open("w") as log:
        session = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                    str(tmp_path / "test_inner.py")], cwd=REPO, env=env, stdout=log,
                                   stderr=subprocess.STDOUT)
    broker_pid = None
    try:
        _wait_for(lambda: (tmp_path / "bootstrap.txt").exists() or session.poll() is not None, 240,
                  "the inner session's broker")
        assert session.poll() is None, (tmp_path / "inner.log").read_text()
        (data_dir,) = temp.glob("newswatch-test-kafka-*")
        broker_pid = int((data_dir / "broker.pid").read_text())
        assert _alive(broker_pid)
        session.send_signal(stop)
        session.wait(timeout=60)
        _wait_for(lambda: not _alive(broker_pid), 45, f"the broker (pid {broker_pid}) to stop")
        if stop == signal.SIGTERM:  # a clean stop also removes the data directory
            assert not data_dir.exists(), (tmp_path / "inner.log").read_text()
    finally:
        if session.poll() is None:
            session.kill()
            session.wait(10)
        if broker_pid is not None and _alive(broker_pid):
            os.kill(broker_pid, signal.SIGKILL)
