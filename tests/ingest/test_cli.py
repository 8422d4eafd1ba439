"""The ingest verbs as users run them: `newswatch fetch`, `newswatch feeds`, `newswatch ingest`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from newswatch.broker.local import free_port
from newswatch.cli import main
from newswatch.kafka_settings import Topics
from newswatch.schemas import Article, decode

from ingest.feeds_config import FeedConfig
from ingest.seen import IngestStore
from tests.ingest.conftest import local_settings, make_poller
from tests.ingest.feeds_fixture import AR, EN, RU, atom, entries, rss2
from tests.ingest.test_parse import BILLION_LAUGHS
from tests.support.kafka import read_records
from tests.support.waiting import wait_until


def run_cli(*args):
    return CliRunner().invoke(main, list(args))


def test_fetch_file_prints_article_json_lines(tmp_path):
    feed = tmp_path / "ar.xml"
    feed.write_bytes(rss2("أخبار", "ar", entries(AR, "http://ar.example.test/n", "ar-")))
    result = run_cli("fetch", str(feed))
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    articles = [decode(line.encode(), Article) for line in lines]
    assert [a.title for a in articles] == [title for title, _ in AR]
    assert {a.lang for a in articles} == {"ar"}
    assert "مصر" in lines[0]  # UTF-8 as published, not \u-escaped
    assert "3 article(s) from" in result.stderr


def test_fetch_file_as_url_gives_the_ids_ingest_would_publish(tmp_path):
    feed = tmp_path / "en.xml"
    feed.write_bytes(rss2("English desk", "en", entries(EN, "/en", "en-")))  # relative links
    result = run_cli("fetch", str(feed), "--as-url", "https://news.example.org/rss")
    articles = [json.loads(line) for line in result.stdout.splitlines()]
    assert [a["id"] for a in articles] == [f"guid:news.example.org:en-{i}" for i in range(3)]
    assert articles[0]["url"] == "https://news.example.org/en/0"
    assert articles[0]["feed"]["url"] == "https://news.example.org/rss"


@pytest.mark.parametrize("body, needle", [
    (b"<html><body>Moved</body></html>", "not_a_feed"),
    (BILLION_LAUGHS, "entity_declaration"),
])
def test_fetch_bad_file_gives_a_clear_error_and_non_zero_exit(tmp_path, body, needle):
    feed = tmp_path / "bad.xml"
    feed.write_bytes(body)
    result = run_cli("fetch", str(feed))
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.startswith(f"newswatch: error: {feed}: {needle}")


def test_fetch_missing_file_and_other_schemes():
    assert "cannot read" in run_cli("fetch", "/no/such/feed.xml").stderr
    result = run_cli("fetch", "ftp://example.org/feed.xml")
    assert result.exit_code == 1 and "bad_scheme" in result.stderr


def test_fetch_url_respects_the_address_guard(feed_server):
    feed_server.serve_feed("/ru.atom", atom("Лента", "ru", entries(RU, "http://ru.example.test/n", "tag:ru,")))
    refused = run_cli("fetch", feed_server.url("/ru.atom"))
    assert refused.exit_code == 1 and "address_refused" in refused.stderr and "loopback" in refused.stderr
    assert feed_server.hits_for("/ru.atom") == []
    allowed = run_cli("fetch", "--allow-private-networks", feed_server.url("/ru.atom"))
    assert allowed.exit_code == 0, allowed.output
    assert [json.loads(line)["lang"] for line in allowed.stdout.splitlines()] == ["ru"] * 3
    missing = run_cli("fetch", "--allow-private-networks", feed_server.url("/gone"))
    assert missing.exit_code == 1 and "http_404" in missing.stderr


def write_config(tmp_path: Path, feed_urls, *, bootstrap="127.0.0.1:1", prefix="newswatch.") -> Path:
    (tmp_path / "feeds.yaml").write_text("feeds:\n" + "".join(
        f"  - url: {url}\n    name: feed {i}\n    interval: 60\n" for i, url in enumerate(feed_urls)))
    config = tmp_path / "newswatch.yaml"
    config.write_text(f"kafka:\n  bootstrap_servers: \"{bootstrap}\"\n  topic_prefix: \"{prefix}\"\n"
                      "feeds: feeds.yaml\ningest:\n  allow_private_networks: true\n  state_dir: state\n"
                      "  interval_floor_s: 1\n")
    return config


async def test_feeds_shows_health_from_the_state_file(feed_server, tmp_path):
    feed_server.serve_feed("/ok.rss", rss2("ok", "en", entries(EN, "http://a.test/n", "a")))
    urls = [feed_server.url("/ok.rss"), feed_server.url("/missing.rss")]
    config = write_config(tmp_path, urls)
    store = IngestStore.in_dir(tmp_path / "state")
    poller = make_poller([FeedConfig(url=u, name=f"feed {i}", interval=60) for i, u in enumerate(urls)], store,
                         local_settings())
    await poller.poll_all()
    await poller.client.aclose()
    store.close()
    result = run_cli("feeds", "--config", str(config))
    assert result.exit_code == 0, result.output
    rows = {line.split()[1]: line for line in result.stdout.splitlines() if line.startswith("feed ")}
    ok, failing = rows["0"].split(), rows["1"].split()
    assert ok[2] == "ok" and ok[3:5] == ["0s", "ago"] and ok[-2:] == ["45s", "3"]  # 60 s shortened: news came
    assert failing[2] == "failing" and failing[3] == "never" and failing[4] == "1" and "http_404:" in failing
    assert "2 feed(s), 1 failing, 3 article(s) waiting for Kafka" in result.stdout


def test_ingest_with_a_busy_metrics_port_says_so(tmp_path):
    import socket
    config = write_config(tmp_path, ["https://feeds.example/rss"])
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        result = run_cli("ingest", "--config", str(config), "--metrics-port", str(busy.getsockname()[1]))
    assert result.exit_code == 1 and "cannot serve metrics on port" in result.stderr


@pytest.mark.integration
def test_ingest_runs_publishes_serves_metrics_and_exits_0_on_sigterm(feed_server, tmp_path, kafka_bootstrap,
                                                                     topic_prefix):
    feed_server.serve_feed("/en.rss", rss2("en", "en", entries(EN, "http://news.example.test/en", "en-")))
    config = write_config(tmp_path, [feed_server.url("/en.rss")], bootstrap=kafka_bootstrap, prefix=topic_prefix)
    port = free_port()
    env = {**os.environ, "NEWSWATCH_KAFKA_BOOTSTRAP": kafka_bootstrap}
    process = subprocess.Popen([sys.executable, "-m", "newswatch", "ingest", "--config", str(config),
                                "--metrics-port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=env, cwd=tmp_path)
    try:
        records = read_records(kafka_bootstrap, Topics(topic_prefix).articles, min_count=3, timeout=90, settle=1)
        assert sorted(r.key.decode() for r in records) == [f"guid:127.0.0.1:en-{i}" for i in range(3)]

        def published_metric():
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
            return "newswatch_ingest_articles_published_total 3.0" in text and text
        metrics = wait_until(published_metric, 30, "published metric never reached 3")
        assert 'newswatch_ingest_polls_total{outcome="new"} 1.0' in metrics
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    stderr = process.stderr.read().decode()
    assert "ingest_started feeds=1" in stderr and "ingest_stopped published=3 pending=0" in stderr
    assert (tmp_path / "state" / "ingest.sqlite3").exists()
