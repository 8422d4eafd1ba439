"""All of a run's state lives under `--run-dir` (ingest's included), and `newswatch up --fresh`
starts the demo afresh: it removes what `up` wrote there and the local broker's data, and nothing
else; it refuses when the broker is not its own to reset."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from newswatch.broker.local import BrokerStatus, free_port
from newswatch.config import load_config
from newswatch.stack.plan import run_config
from newswatch.stack.runner import Console, Stack, StackError
from newswatch.stack.supervisor import ChildSpec


def _config(tmp_path: Path, ingest: dict | None = None) -> Path:
    data = {"up": {"demo_feeds": None, "sink": None, "metrics_ports": {"ingest": 0, "process": 0, "alerts": 0}},
            "console": {"port": free_port()}}
    if ingest is not None:
        data["ingest"] = ingest
    path = tmp_path / "newswatch.yaml"
    path.write_text(json.dumps(data))
    return path


def test_ingest_state_goes_under_the_run_folder_unless_the_file_names_one(tmp_path):
    path = _config(tmp_path)
    assert run_config({}, load_config(path), tmp_path / "run")["ingest"]["state_dir"] == str(tmp_path / "run" / "ingest")
    path = _config(tmp_path, {"state_dir": "mine"})
    derived = run_config({"ingest": {"state_dir": "mine"}}, load_config(path), tmp_path / "run")
    assert derived["ingest"]["state_dir"] == str(tmp_path / "mine")


class FakeBroker:
    def __init__(self, data_dir: Path, running: bool = False):
        self.data_dir = data_dir
        self.running = running

    def status(self):
        return BrokerStatus(self.running, 4242 if self.running else None, 19092, self.data_dir, "4.1.2")

    def start(self, timeout):
        return BrokerStatus(True, 4242, 19092, self.data_dir, "4.1.2"), True

    def stop(self, timeout=30.0):
        return True


def _plan(config_file, settings, run_dir):
    return [ChildSpec("ingest", (sys.executable, "-c", "import time; time.sleep(600)"),
                      log_path=run_dir / "logs" / "ingest.log")]


def _environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("NEWSWATCH_")}


async def test_fresh_removes_the_runs_state_and_the_broker_data_and_nothing_else(tmp_path):
    run_dir, kafka = tmp_path / "run", tmp_path / "kafka"
    for folder in (run_dir / "ingest", run_dir / "logs", run_dir / "newswatch.processor-data", kafka / "meta"):
        folder.mkdir(parents=True)
    (run_dir / "ingest" / "state.sqlite").write_text("seen")
    (run_dir / "alerts.jsonl").write_text("{}\n")
    (run_dir / "notes.txt").write_text("mine")
    path = _config(tmp_path)
    out = io.StringIO()
    stack = Stack(load_config(path), path, run_dir, Console(stream=out), environ=_environ(),
                  broker_factory=lambda: FakeBroker(kafka), plan=_plan, fresh=True)
    run = asyncio.create_task(stack.run())
    deadline = asyncio.get_running_loop().time() + 30
    while "running;" not in out.getvalue():
        assert asyncio.get_running_loop().time() < deadline and not run.done(), out.getvalue()
        await asyncio.sleep(0.02)
    assert not (run_dir / "ingest" / "state.sqlite").exists() and not (run_dir / "alerts.jsonl").exists()
    assert not (run_dir / "newswatch.processor-data").exists() and not kafka.exists()
    assert (run_dir / "notes.txt").read_text() == "mine"
    assert f"fresh start: removed the state in {run_dir} and the broker data in {kafka}" in out.getvalue()
    os.kill(os.getpid(), signal.SIGTERM)
    assert await asyncio.wait_for(run, 30) == 0


async def test_fresh_is_refused_for_a_running_broker_and_for_a_configured_one(tmp_path):
    path = _config(tmp_path)
    (tmp_path / "kafka").mkdir()
    stack = Stack(load_config(path), path, tmp_path / "run", Console(stream=io.StringIO()), environ=_environ(),
                  broker_factory=lambda: FakeBroker(tmp_path / "kafka", running=True), plan=_plan, fresh=True)
    with pytest.raises(StackError, match="--fresh needs the local broker stopped .*newswatch kafka stop"):
        await stack.run()
    external = {**_environ(), "NEWSWATCH_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}"}
    stack = Stack(load_config(path), path, tmp_path / "run", Console(stream=io.StringIO()), environ=external,
                  broker_factory=lambda: pytest.fail("no local broker"), plan=_plan, fresh=True)
    with pytest.raises(StackError, match="a broker is configured"):
        await stack.run()
    assert (tmp_path / "kafka").exists()
