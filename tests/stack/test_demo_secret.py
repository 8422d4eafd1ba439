"""The demo's own subscription can be tested from a second shell while `newswatch up` runs: `up`
keeps the sink secret it made in a 0600 file of its run folder (removed when it stops), and
`newswatch alerts test` reads it when the variable is unset. The secret is never printed."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import stat
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from alerts.signing import signing_key
from alerts.sink import SinkServer
from newswatch.broker.local import BrokerStatus, free_port
from newswatch.cli import main
from newswatch.config import load_config
from newswatch.secrets import Secret
from newswatch.stack.runner import SINK_SECRET_FILE, Console, Stack
from newswatch.stack.supervisor import ChildSpec

CHILD = """
import os, sys, time
open(sys.argv[1], "w").write(os.environ.get("NEWSWATCH_SINK_SECRET", ""))
time.sleep(600)
"""


class FakeBroker:
    def start(self, timeout):
        return BrokerStatus(True, 4242, 19092, Path("/data"), "4.1.2"), False

    def stop(self, timeout=30.0):
        return True


def _up_config(tmp_path: Path) -> Path:
    path = tmp_path / "newswatch.yaml"
    path.write_text(json.dumps({"up": {"demo_feeds": None, "sink": {"port": free_port()},
                                       "metrics_ports": {"ingest": 0, "process": 0, "alerts": 0}},
                                "console": {"port": free_port()}}))
    return path


async def _run_up(tmp_path: Path, environ: dict[str, str]) -> tuple[str, str | None, int | None, str]:
    """Run `up` with one fake child; returns (what the child got, the file's text and mode while
    running, the console output), after a clean stop."""
    config = _up_config(tmp_path)
    seen = tmp_path / "child-secret"

    def plan(config_file, settings, run_dir):
        return [ChildSpec("alerts", (sys.executable, "-c", CHILD, str(seen)), log_path=run_dir / "logs" / "a.log")]

    out = io.StringIO()
    run_dir = tmp_path / "run"
    stack = Stack(load_config(config), config, run_dir, Console(stream=out), environ=environ,
                  broker_factory=FakeBroker, plan=plan)
    run = asyncio.create_task(stack.run())
    deadline = asyncio.get_running_loop().time() + 30
    while not (seen.exists() and seen.read_text()):
        assert asyncio.get_running_loop().time() < deadline and not run.done(), out.getvalue()
        await asyncio.sleep(0.02)
    secret_file = run_dir / SINK_SECRET_FILE
    text = secret_file.read_text() if secret_file.exists() else None
    mode = stat.S_IMODE(secret_file.stat().st_mode) if secret_file.exists() else None
    os.kill(os.getpid(), signal.SIGTERM)
    assert await asyncio.wait_for(run, 30) == 0
    assert not secret_file.exists(), "the secret file is removed when up stops"
    return seen.read_text(), text, mode, out.getvalue()


async def test_up_keeps_the_secret_it_made_in_a_private_file_while_it_runs(tmp_path):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWATCH_")}
    given, text, mode, output = await _run_up(tmp_path, environ)
    assert given.startswith("whsec_") and text == given
    assert mode == 0o600
    assert given not in output


async def test_a_secret_from_the_environment_is_not_written_anywhere(tmp_path):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWATCH_")}
    environ["NEWSWATCH_SINK_SECRET"] = "whsec_" + "c2VjcmV0LXNlY3JldC1zZWNyZXQ="
    given, text, _, _ = await _run_up(tmp_path, environ)
    assert given == environ["NEWSWATCH_SINK_SECRET"] and text is None


@pytest.fixture
def sink_with_secret(tmp_path):
    """A real sink verifying with a per-test secret; returns (port, secret)."""
    secret = "whsec_" + "ZGVtby1zaW5rLXNlY3JldC1mb3ItdGhpcy10ZXN0"
    server = SinkServer(("127.0.0.1", 0), signing_key(Secret(secret)), None, lambda text: None)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield server.server_address[1], secret
    server.shutdown()
    server.server_close()


def _demo_config(tmp_path: Path, port: int) -> Path:
    (tmp_path / "subs.yaml").write_text(
        f"subscriptions:\n  - name: local-sink\n    url: http://127.0.0.1:{port}/\n"
        "    secret_env: NEWSWATCH_SINK_SECRET\n")
    path = tmp_path / "newswatch.yaml"
    path.write_text(f"subscriptions: subs.yaml\nalerts: {{allow_networks: [127.0.0.1/32]}}\nup: {{sink: {{port: {port}}}}}\n"
                    f"console: {{port: {free_port()}}}\n")
    return path


def test_alerts_test_reaches_the_demo_sink_with_the_secret_of_the_running_up(tmp_path, sink_with_secret, monkeypatch):
    port, secret = sink_with_secret
    monkeypatch.delenv("NEWSWATCH_SINK_SECRET", raising=False)
    config = _demo_config(tmp_path, port)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / SINK_SECRET_FILE).write_text(secret)
    result = CliRunner().invoke(main, ["alerts", "test", "local-sink", "--config", str(config),
                                       "--run-dir", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert "ok: local-sink answered HTTP 200" in result.output
    assert secret not in result.output and secret[6:] not in result.output


def test_without_a_running_up_the_missing_variable_is_named(tmp_path, sink_with_secret, monkeypatch):
    port, _ = sink_with_secret
    monkeypatch.delenv("NEWSWATCH_SINK_SECRET", raising=False)
    result = CliRunner().invoke(main, ["alerts", "test", "local-sink", "--config", str(_demo_config(tmp_path, port)),
                                       "--run-dir", str(tmp_path / "no-run")])
    assert result.exit_code == 1
    assert "environment variable NEWSWATCH_SINK_SECRET is not set" in result.output
