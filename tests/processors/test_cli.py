"""`newswatch process` refuses bad set-ups with one clear message and exit code 1."""

import os
import subprocess
import sys

from newswatch.broker.local import free_port
from newswatch.kafka_settings import BOOTSTRAP_ENV
from tests.processors.worker_support import ROOT, write_config


def run_process(config, env_extra=None):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "newswatch", "process", "--config", str(config),
                           "--metrics-port", "0"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_broken_watchlist_stops_start_up_naming_file_and_line(tmp_path):
    folder = tmp_path / "watchlists"
    folder.mkdir()
    (folder / "broken.yaml").write_text("topics:\n  - id: x\n    severity: [\n")
    done = run_process(write_config(tmp_path, "t.", folder))
    assert done.returncode == 1
    assert done.stderr.startswith("newswatch: error: ") and "broken.yaml:" in done.stderr


def test_config_without_watchlists_is_refused(tmp_path):
    config = tmp_path / "newswatch.yaml"
    config.write_text("kafka: {topic_prefix: t.}\n")
    done = run_process(config)
    assert done.returncode == 1 and "watchlists: not set" in done.stderr


def test_unknown_process_key_is_refused_with_its_line(tmp_path):
    config = tmp_path / "newswatch.yaml"
    config.write_text("kafka: {topic_prefix: t.}\nprocess:\n  batch: 10\n")
    done = run_process(config)
    assert done.returncode == 1 and "newswatch.yaml:3" in done.stderr and "batch" in done.stderr


def test_unreachable_broker_is_a_clear_error(tmp_path):
    port = free_port()
    done = run_process(write_config(tmp_path, "t.", ROOT / "seeds" / "watchlists"),
                       {BOOTSTRAP_ENV: f"127.0.0.1:{port}"})
    assert done.returncode == 1
    assert f"cannot reach Kafka at 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr
