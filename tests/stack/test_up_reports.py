"""`newswatch up` shows a watchlist edit the processor rejected: on the status line (counted as an
error) and on the console with the reason, not only in process.log."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import signal
import sys
from pathlib import Path

from newswatch.broker.local import BrokerStatus, free_port
from newswatch.config import load_config
from newswatch.logs import KeyValueFormatter
from newswatch.stack.runner import Console, Stack
from newswatch.stack.status import parse_metrics, rejected_reloads, summarize
from newswatch.stack.supervisor import ChildSpec
from processors.detection import load_watchlists
from processors.reload import WatchlistReloader

ROOT = Path(__file__).resolve().parents[2]


def test_a_rejected_reload_counts_as_an_error_and_is_named_on_the_status_line():
    process = parse_metrics('newswatch_processor_watchlist_reloads_total{result="invalid"} 2.0\n'
                            'newswatch_processor_watchlist_reloads_total{result="reloaded"} 5.0\n')
    snapshot = summarize({"ingest": [], "process": process, "alerts": []}, 0, 0)
    assert snapshot.errors == 2 and "errors 2" in snapshot.line()
    assert "watchlist edits rejected 2" in snapshot.line()
    assert "rejected" not in summarize({"ingest": [], "process": [], "alerts": []}, 0, 0).line()


def _reload_failure_line(tmp_path: Path) -> str:
    """What the real reloader logs when an edit breaks a pack."""
    packs = tmp_path / "packs"
    packs.mkdir()
    pack = packs / "p.yaml"
    pack.write_text("topics:\n  - id: t\n    title: T\n    terms:\n      a: {en: [alpha]}\n")
    reloader = WatchlistReloader(packs, load_watchlists)
    pack.write_text("topics:\n  - id: t\n    title: T\n    severty: high\n    terms:\n      a: {en: [alpha]}\n")
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(KeyValueFormatter())
    reload_log = logging.getLogger("newswatch.processors.reload")
    reload_log.addHandler(handler)
    try:
        assert reloader.poll().reason == "invalid"
    finally:
        reload_log.removeHandler(handler)
    (line,) = [line for line in out.getvalue().splitlines() if "watchlists_reload_failed" in line]
    return line


def test_the_console_message_gives_the_reason_with_file_and_line(tmp_path):
    line = _reload_failure_line(tmp_path)
    (message,) = rejected_reloads(["2026-01-01T00:00:00 info other_event x=1", line])
    assert message.startswith("process: watchlist edit rejected; the previous watchlists stay in use")
    assert f"  | {tmp_path / 'packs' / 'p.yaml'}:4:5: topics.0.severty: unknown key" in message


class FakeBroker:
    def start(self, timeout):
        return BrokerStatus(True, 4242, 19092, Path("/data"), "4.1.2"), False

    def stop(self, timeout=30.0):
        return True


async def test_up_prints_a_rejected_edit_from_the_process_log(tmp_path):
    line = _reload_failure_line(tmp_path)
    (tmp_path / "newswatch.yaml").write_text(json.dumps(
        {"up": {"demo_feeds": None, "sink": None, "metrics_ports": {"ingest": 0, "process": 0, "alerts": 0}},
         "console": {"port": free_port()}}))
    trigger = tmp_path / "edit-now"
    child = ("import pathlib, sys, time\n"
             f"while not pathlib.Path({str(trigger)!r}).exists(): time.sleep(0.05)\n"
             f"print({line!r}, flush=True)\ntime.sleep(600)\n")

    def plan(config_file, settings, run_dir):
        return [ChildSpec("process", (sys.executable, "-c", child), log_path=run_dir / "logs" / "process.log")]

    out = io.StringIO()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWATCH_")}
    stack = Stack(load_config(tmp_path / "newswatch.yaml"), tmp_path / "newswatch.yaml", tmp_path / "run",
                  Console(stream=out), environ=environ, broker_factory=FakeBroker, plan=plan)
    run = asyncio.create_task(stack.run())
    deadline = asyncio.get_running_loop().time() + 30
    while "running;" not in out.getvalue():
        assert asyncio.get_running_loop().time() < deadline, out.getvalue()
        await asyncio.sleep(0.02)
    trigger.touch()  # the edit happens while `up` watches
    while "watchlist edit rejected" not in out.getvalue():
        assert asyncio.get_running_loop().time() < deadline, out.getvalue()
        await asyncio.sleep(0.02)
    os.kill(os.getpid(), signal.SIGTERM)
    assert await asyncio.wait_for(run, 30) == 0
    assert "topics.0.severty: unknown key" in out.getvalue()
