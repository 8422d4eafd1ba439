"""`newswatch alerts` as a real process: SIGKILL between attempts loses nothing; SIGTERM exits 0."""

import base64
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook

from newswatch.kafka_settings import Topics
from tests.alerts.factories import ARABIC_TITLE, match
from tests.alerts.receivers import Receiver, fail_first, produce
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

SECRET = "whsec_" + base64.b64encode(b"restart-test-signing-key").decode()
ROOT = Path(__file__).resolve().parents[2]


def write_config(tmp_path: Path, bootstrap: str, prefix: str, url: str) -> Path:
    (tmp_path / "subscriptions.yaml").write_text(
        f"subscriptions:\n  - name: desk\n    url: {url}\n    secret_env: NW_RESTART_SECRET\n", encoding="utf-8")
    config = tmp_path / "newswatch.yaml"
    config.write_text(
        f"kafka:\n  bootstrap_servers: \"{bootstrap}\"\n  topic_prefix: \"{prefix}\"\n"
        "subscriptions: subscriptions.yaml\n"
        "alerts:\n  allow_private_networks: true\n  retry_schedule: [2s, 2s, 2s, 2s]\n  retry_jitter: 0\n"
        "  grouping: {wait: 0s, interval: 1m}\n", encoding="utf-8")
    return config


def start(config: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "NW_RESTART_SECRET": SECRET, "NEWSWATCH_KAFKA_BOOTSTRAP": ""}
    env.pop("NEWSWATCH_KAFKA_BOOTSTRAP")
    return subprocess.Popen([sys.executable, "-m", "newswatch", "alerts", "--config", str(config),
                             "--metrics-port", "0"], cwd=ROOT, env=env,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT)


def test_sigkill_between_attempts_still_delivers_once(kafka_bootstrap, topic_prefix, tmp_path):
    topics = Topics(topic_prefix)
    receiver = Receiver(fail_first(3))
    config = write_config(tmp_path, kafka_bootstrap, topic_prefix, receiver.url)
    log = tmp_path / "alerts.log"
    first = start(config, log)
    second = None
    try:
        produce(kafka_bootstrap, topics.matches, [match(title=ARABIC_TITLE, lang="ar")])
        wait_until(lambda: len(receiver.requests) >= 1, 90, "the first attempt (answered 500)")
        first.send_signal(signal.SIGKILL)
        assert first.wait(10) == -signal.SIGKILL
        attempts_before_restart = len(receiver.requests)
        assert attempts_before_restart < 4, "the kill came between attempts"
        second = start(config, log)
        wait_until(lambda: receiver.accepted(), 45, "the restarted process delivers the pending alert")
        wait_until(lambda: "alert_delivered" in log.read_text(), 10, "the delivery is logged")
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0, log.read_text()
        # nothing was sent twice: three refusals, one acceptance, all under one webhook-id
        assert [r.status for r in receiver.requests] == [500, 500, 500, 200]
        assert len(receiver.accepted()) == 1
        assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1
        Webhook(SECRET).verify(receiver.accepted()[0].body, receiver.accepted()[0].headers)
        text = log.read_text()
        assert "alerts_started" in text and "alerts_stopped" in text
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
        receiver.close()
