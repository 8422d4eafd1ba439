"""Start order never matters: alerts first (before any topic exists), then the processor, then
ingest, seconds apart, as separate processes on the real broker; every story's alert arrives and
the shared topics have the configured partitions whoever created them.

Before the fix, alerts subscribed to a matches topic that did not exist yet and heard of it only
at its next metadata refresh, minutes later: nothing was delivered in the meantime.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from kafka import KafkaAdminClient
from standardwebhooks.webhooks import Webhook

from newswatch.kafka_settings import Topics
from tests.alerts.receivers import Receiver
from tests.ingest.feed_server import FeedServer
from tests.ingest.feeds_fixture import entries, rss2
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SECRET = "whsec_" + base64.b64encode(b"start-order-signing-key").decode()
PARTITIONS = 2
# Written for this test: three unrelated stories, each raising a topic of the default packs.
STORIES = [
    ("Qatar signs deal to buy Patriot air defence batteries",
     "<p>Qatar signed a contract with the United States to buy four Patriot air defence batteries, "
     "the defence ministry said on Monday.</p>"),
    ("Indian defence minister arrives in Tokyo for 2+2 talks",
     "<p>India's defence minister arrived in Tokyo on Tuesday for 2+2 talks with his Japanese counterpart "
     "and the two foreign ministers.</p>"),
    ("Министр иностранных дел Египта прибыл в Москву с визитом",
     "<p>Министр иностранных дел Египта прибыл в Москву для переговоров с российским коллегой "
     "о поставках вооружений.</p>"),
]


def _config(root: Path, bootstrap: str, prefix: str, feed_url: str, receiver_url: str) -> Path:
    (root / "feeds.yaml").write_text(f"feeds:\n  - url: {feed_url}\n    name: start-order feed\n", encoding="utf-8")
    (root / "subscriptions.yaml").write_text(
        f"subscriptions:\n  - name: desk\n    url: {receiver_url}\n    secret_env: NW_START_ORDER_SECRET\n"
        "    format: json\n    topics: all\n    grouping: {wait: 0s, interval: 5m}\n", encoding="utf-8")
    config = root / "newswatch.yaml"
    config.write_text(
        f'kafka:\n  bootstrap_servers: "{bootstrap}"\n  topic_prefix: "{prefix}"\n  partitions: {PARTITIONS}\n'
        f"feeds: feeds.yaml\nwatchlists: {REPO / 'seeds' / 'watchlists'}\nsubscriptions: subscriptions.yaml\n"
        "ingest:\n  allow_private_networks: true\n  state_dir: state\n  interval_floor_s: 1\n"
        "alerts:\n  allow_private_networks: true\n", encoding="utf-8")
    return config


def _partitions(bootstrap: str, names: list[str]) -> dict[str, int]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="tests-start-order")
    try:
        present = set(admin.list_topics())
        return {d["name"]: len(d["partitions"]) for d in admin.describe_topics([n for n in names if n in present])
                if d.get("partitions")}
    finally:
        admin.close()


def test_alerts_then_process_then_ingest_delivers_every_alert(kafka_bootstrap, topic_prefix, tmp_path):
    topics = Topics(topic_prefix)
    receiver = Receiver()
    env = {**os.environ, "NEWSWATCH_KAFKA_BOOTSTRAP": kafka_bootstrap, "NW_START_ORDER_SECRET": SECRET}
    started: list[tuple[str, subprocess.Popen]] = []

    def start(*verb: str) -> subprocess.Popen:
        log = open(tmp_path / f"{verb[0]}.log", "wb")
        process = subprocess.Popen([sys.executable, "-m", "newswatch", *verb, "--config", str(config),
                                    "--metrics-port", "0"], stdout=log, stderr=subprocess.STDOUT, env=env,
                                   cwd=tmp_path)
        started.append((verb[0], process))
        return process

    def alive() -> None:
        for name, process in started:
            assert process.poll() is None, f"{name} exited {process.returncode}: " + \
                (tmp_path / f"{name}.log").read_text(errors="replace")[-3000:]

    with FeedServer() as feeds:
        feeds.serve_feed("/news.rss", rss2("start order", "en", entries(STORIES, "http://news.example.test/s", "so-")))
        config = _config(tmp_path, kafka_bootstrap, topic_prefix, feeds.url("/news.rss"), receiver.url)
        try:
            assert _partitions(kafka_bootstrap, [topics.articles, topics.matches]) == {}, "a fresh prefix"
            start("alerts")
            # Alerts makes the topic it reads before it subscribes; then it waits seconds alone.
            wait_until(lambda: alive() or topics.matches in _partitions(kafka_bootstrap, [topics.matches]), 60,
                       "alerts never created the matches topic")
            wait_until(lambda: alive() or (tmp_path / "alerts.log").stat().st_size > 0, 30, "alerts logged nothing")
            start("process")
            wait_until(lambda: alive() or topics.articles in _partitions(kafka_bootstrap, [topics.articles]), 60,
                       "the processor never created the articles topic")
            wait_until(lambda: alive() or b"processor_starting" in (tmp_path / "process.log").read_bytes(), 60,
                       "the processor never started")
            start("ingest")
            # One `first` alert per story; three stories. 120 s is far below the minutes a consumer
            # of a missing topic waited for its metadata refresh, and leaves room on a loaded machine.
            wait_until(lambda: alive() or len({r.headers.get("webhook-id") for r in receiver.requests}) >= 3, 120,
                       "not every story's alert arrived")
            bodies = [Webhook(SECRET).verify(r.body, r.headers) for r in receiver.requests]
            firsts = [b for b in bodies if b["reason"] == "first"]
            assert sorted(b["article"]["title"] for b in firsts) == sorted(
                title for title, _ in STORIES)
            assert _partitions(kafka_bootstrap, [topics.articles, topics.matches]) == {
                topics.articles: PARTITIONS, topics.matches: PARTITIONS}
        finally:
            for _, process in reversed(started):
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            for _, process in started:
                try:
                    process.wait(40)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(10)
            receiver.close()
