"""The `up` orchestrator with fakes: fake stage processes, a fake broker, the real demo server.

What it must do: refuse busy ports before starting anything; use a broker that already runs
and leave it running; stop the broker it started; hand the bootstrap address and a generated
sink secret to the children through their environment; stop everything on SIGTERM.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import socket
import sys
from pathlib import Path

import httpx
import pytest

from newswatch.broker.local import BrokerStatus, free_port
from newswatch.config import AppConfig, load_config
from newswatch.stack.runner import Console, Stack, StackError
from newswatch.stack.supervisor import ChildSpec

CHILD = """
import json, os, sys, time
keys = ("NEWSWATCH_KAFKA_BOOTSTRAP", "NEWSWATCH_SINK_SECRET")
with open(sys.argv[1], "w") as out:
    json.dump({k: os.environ.get(k) for k in keys}, out)
time.sleep(600)
"""


class FakeBroker:
    def __init__(self, already_running: bool):
        self.already_running = already_running
        self.stops = 0

    def start(self, timeout: float):
        return BrokerStatus(True, 4242, 19092, Path("/data"), "4.1.2"), not self.already_running

    def stop(self, timeout: float = 30.0) -> bool:
        self.stops += 1
        return True


def _config(tmp_path: Path, **up) -> AppConfig:
    (tmp_path / "demo").mkdir(exist_ok=True)
    (tmp_path / "demo" / "news.xml").write_text('<rss version="2.0"><channel/></rss>')
    settings = {"demo_feeds": {"dir": "demo", "port": free_port()}, "sink": {"port": free_port()},
                "metrics_ports": {"ingest": 0, "process": 0, "alerts": 0}}
    settings.update(up)
    (tmp_path / "newswatch.yaml").write_text(json.dumps({"up": settings, "console": {"port": free_port()}}))  # JSON is YAML too
    return load_config(tmp_path / "newswatch.yaml")


def _fake_plan(tmp_path: Path):
    def plan(config_file, settings, run_dir):
        return [ChildSpec(name, (sys.executable, "-c", CHILD, str(tmp_path / f"{name}.json")),
                          log_path=run_dir / "logs" / f"{name}.log") for name in ("ingest", "process")]
    return plan


async def _until(condition, timeout: float, what: str):
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out: {what}")
        await asyncio.sleep(0.02)


def _written(path: Path) -> bool:
    """The child's JSON file is there and complete (it may exist, still empty, for a moment)."""
    try:
        json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return False
    return True


def _pid_gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


@pytest.mark.parametrize("already_running, stops, stop_signal", [(True, 0, signal.SIGTERM), (False, 1, signal.SIGHUP)])
async def test_up_runs_children_with_broker_and_secret_then_stops_on_a_signal(tmp_path, already_running, stops,
                                                                               stop_signal):
    broker = FakeBroker(already_running)
    out = io.StringIO()
    config = _config(tmp_path)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWATCH_")}
    stack = Stack(config, tmp_path / "newswatch.yaml", tmp_path / "run", Console(stream=out), environ=environ,
                  broker_factory=lambda: broker, plan=_fake_plan(tmp_path))
    run = asyncio.create_task(stack.run())
    await _until(lambda: all(_written(tmp_path / f"{n}.json") for n in ("ingest", "process")), 20, "children")
    seen = json.loads((tmp_path / "ingest.json").read_text())
    assert seen["NEWSWATCH_KAFKA_BOOTSTRAP"] == "127.0.0.1:19092"
    assert seen["NEWSWATCH_SINK_SECRET"].startswith("whsec_")
    assert json.loads((tmp_path / "process.json").read_text())["NEWSWATCH_SINK_SECRET"] == seen["NEWSWATCH_SINK_SECRET"]
    async with httpx.AsyncClient(trust_env=False) as client:
        response = await client.get(f"http://127.0.0.1:{config.up.demo_feeds.port}/news.xml")
    assert response.status_code == 200 and response.headers["etag"]
    pids = json.loads((tmp_path / "run" / "up.json").read_text())["children"]
    run_config = load_config(tmp_path / "run" / "newswatch.yaml")  # what the stages were given
    assert run_config.ingest.allow_networks == ("127.0.0.1/32",) and run_config.up == config.up
    assert not run_config.ingest.allow_private_networks
    assert run_config.ingest.state_dir == tmp_path / "run" / "ingest"  # all of a run's state under --run-dir
    assert not config.ingest.allow_private_networks
    assert set(pids) == {"ingest", "process"}

    os.kill(os.getpid(), stop_signal)  # handled by `up`: Ctrl-C, `kill`, a closed terminal
    assert await asyncio.wait_for(run, 30) == 0
    assert broker.stops == stops
    assert not (tmp_path / "run" / "up.json").exists()
    assert all(_pid_gone(pid) for pid in pids.values())
    text = out.getvalue()
    assert f"{stop_signal.name}: stopping the stack" in text and text.rstrip().endswith("stopped")
    assert seen["NEWSWATCH_SINK_SECRET"] not in text  # the generated secret is never printed
    served = [json.loads(line) for line in (tmp_path / "run" / "served.jsonl").read_text().splitlines()]
    assert served[-1]["path"] == "/news.xml" and served[-1]["status"] == 200


async def test_busy_port_is_refused_before_anything_starts(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        config = _config(tmp_path, sink={"port": busy.getsockname()[1]})

        def no_broker():
            raise AssertionError("the broker must not be started when a port is busy")

        stack = Stack(config, tmp_path / "newswatch.yaml", tmp_path / "run", Console(stream=io.StringIO()),
                      environ={}, broker_factory=no_broker, plan=_fake_plan(tmp_path))
        with pytest.raises(StackError, match=f"sink port {busy.getsockname()[1]}"):
            await stack.run()
    assert not (tmp_path / "ingest.json").exists()


async def test_configured_broker_that_does_not_answer_is_a_clear_error(tmp_path):
    config = _config(tmp_path)
    dead = f"127.0.0.1:{free_port()}"

    def no_broker():
        raise AssertionError("a configured broker means no local one")

    stack = Stack(config, tmp_path / "newswatch.yaml", tmp_path / "run", Console(stream=io.StringIO()),
                  environ={"NEWSWATCH_KAFKA_BOOTSTRAP": dead}, broker_factory=no_broker, plan=_fake_plan(tmp_path))
    with pytest.raises(StackError, match=f"{dead} does not answer"):
        await stack.run()


async def test_missing_demo_folder_is_named(tmp_path):
    config = _config(tmp_path, demo_feeds={"dir": "nowhere", "port": free_port()})
    stack = Stack(config, tmp_path / "newswatch.yaml", tmp_path / "run", Console(stream=io.StringIO()),
                  environ={}, broker_factory=lambda: FakeBroker(True), plan=_fake_plan(tmp_path))
    with pytest.raises(StackError, match="up.demo_feeds.dir: .*nowhere is not a folder"):
        await stack.run()
