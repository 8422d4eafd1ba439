"""`newswatch up` stops cleanly even when nobody can read its output any more: a pipe closed
before Ctrl-C (`newswatch up | tee` ended by the same Ctrl-C) and a terminal closed under it.

The real `up` verb runs in a child process with fake stages and a fake broker (each a real
process, so "stopped" is checked on pids), and with the real console on its stdout.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import pty
import signal
import socket
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from newswatch.broker.local import free_port
from newswatch.config import load_config
from newswatch.stack.runner import Console, Stack, StackError

DRIVER = r"""
import subprocess, sys
from pathlib import Path

from newswatch.broker.local import BrokerStatus
from newswatch.stack import cli
from newswatch.stack.supervisor import ChildSpec

class ProcessBroker:
    # A broker that is a real process: `up` must stop it as it would the JVM.
    def start(self, timeout):
        self.process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        return BrokerStatus(True, self.process.pid, 19092, Path("/data"), "4.1.2"), True

    def stop(self, timeout=30.0):
        self.process.terminate()
        self.process.wait(timeout)
        return True

def plan(config_file, settings, run_dir):
    return [ChildSpec(name, (sys.executable, "-c", "import time; time.sleep(600)"),
                      log_path=run_dir / "logs" / f"{name}.log") for name in ("ingest", "process", "alerts")]

Stack = cli.Stack
cli.Stack = lambda *args, **kwargs: Stack(*args, broker_factory=ProcessBroker, plan=plan, **kwargs)
cli.up.main(["--config", sys.argv[1], "--run-dir", sys.argv[2]])
"""


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "newswatch.yaml"
    path.write_text(json.dumps({"up": {"demo_feeds": None, "sink": None,
                                       "metrics_ports": {"ingest": 0, "process": 0, "alerts": 0}},
                                "console": {"port": free_port()}}))
    return path


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
        time.sleep(0.05)


def _running(run_dir: Path) -> dict:
    """up.json once the broker and all three stages are in it."""
    state = run_dir / "up.json"

    def complete() -> bool:
        try:
            data = json.loads(state.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return False
        return "broker_pid" in data and len(data["children"]) == 3

    _wait_for(complete, 60, "up.json with the broker and three stages")
    return json.loads(state.read_text())


def _finish(proc: subprocess.Popen, state: dict, run_dir: Path, stderr_path: Path) -> None:
    pids = [state["broker_pid"], *state["children"].values()]
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        for pid in [proc.pid, *pids]:  # clean up what the failed stop left behind
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        proc.wait(10)
        raise AssertionError(f"`up` did not stop within 60 s; stderr:\n{stderr_path.read_text()}") from None
    stderr = stderr_path.read_text()
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    assert proc.returncode == 0, (proc.returncode, stderr)
    assert not (run_dir / "up.json").exists()
    _wait_for(lambda: not any(_alive(pid) for pid in pids), 10, "every stage and the broker gone")


def _start(tmp_path: Path, **streams) -> tuple[subprocess.Popen, Path, Path]:
    run_dir, stderr_path = tmp_path / "run", tmp_path / "stderr.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWATCH_")}
    with stderr_path.open("w") as stderr:
        proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(_config(tmp_path)), str(run_dir)],
                                stderr=stderr, env=env, **streams)
    return proc, run_dir, stderr_path


def test_a_pipe_closed_before_ctrl_c_does_not_stop_the_stop(tmp_path):
    proc, run_dir, stderr_path = _start(tmp_path, stdout=subprocess.PIPE)
    state = _running(run_dir)
    proc.stdout.close()  # `| tee` ended by the same Ctrl-C
    proc.send_signal(signal.SIGINT)
    _finish(proc, state, run_dir, stderr_path)


def test_a_terminal_closed_under_up_stops_everything(tmp_path):
    master, slave = pty.openpty()

    def controlling_terminal():  # as in a shell: `up` leads a session whose terminal is the pty
        os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)

    proc, run_dir, stderr_path = _start(tmp_path, stdin=slave, stdout=slave, preexec_fn=controlling_terminal)
    os.close(slave)
    try:
        state = _running(run_dir)
        _drain(master)
    finally:
        os.close(master)  # the terminal window closes: SIGHUP, and every later write fails with EIO
    _finish(proc, state, run_dir, stderr_path)


def _drain(fd: int) -> None:
    os.set_blocking(fd, False)
    try:
        while os.read(fd, 65536):
            pass
    except OSError:
        pass


@pytest.mark.parametrize("error", [BrokenPipeError(32, "Broken pipe"), OSError(5, "Input/output error"),
                                   ValueError("I/O operation on closed file")])
def test_the_console_never_raises_and_goes_quiet_once_its_reader_is_gone(error):
    class Dead(io.StringIO):
        writes = 0

        def write(self, text):
            Dead.writes += 1
            raise error

    console = Console(stream=Dead(), interactive=True)
    console.say("stopping")
    console.status("status", 0.0)
    console.say("stopped")
    assert console.gone and Dead.writes == 1


async def test_a_refused_start_does_not_claim_to_have_stopped_anything(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        path = tmp_path / "newswatch.yaml"
        path.write_text(json.dumps({"up": {"demo_feeds": None, "sink": {"port": busy.getsockname()[1]},
                                           "metrics_ports": {"ingest": 0, "process": 0, "alerts": 0}},
                                    "console": {"port": free_port()}}))
        out = io.StringIO()
        stack = Stack(load_config(path), path, tmp_path / "run", Console(stream=out), environ={},
                      broker_factory=lambda: pytest.fail("nothing may start"))
        with pytest.raises(StackError, match="already in use"):
            await stack.run()
    assert "stopped" not in out.getvalue()
