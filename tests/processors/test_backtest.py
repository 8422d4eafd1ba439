"""Backtest: the worker's pipeline over retained records, counted and printed; nothing sent."""

import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from kafka import KafkaAdminClient, KafkaProducer

from newswatch.kafka_settings import BOOTSTRAP_ENV, Topics
from processors.backtest import format_tally, run_backtest
from processors.detection import detect, load_watchlists
from processors.pipeline import InboundRecord
from tests.processors.corpus import labelled_articles, seed_article
from tests.processors.worker_support import ROOT, write_config
from tests.support.kafka import create_topics

SEEDS = ROOT / "seeds" / "watchlists"
NOW = datetime(2026, 2, 14, tzinfo=timezone.utc)


def inbound(items):
    return [InboundRecord("t.articles", 0, n, 1_770_000_000_000 + n, a.id.encode(), a.encode())
            for n, a in enumerate(items)]


def test_counts_per_topic_and_samples_with_evidence():
    corpus = labelled_articles(300, id_prefix="bt")
    records = inbound([item.article for item in corpus] + [seed_article()])
    records.append(InboundRecord("t.articles", 0, 999, 0, b"x", b"not json"))
    tally = run_backtest(records, detect=detect, watchlist=load_watchlists(SEEDS), now=NOW, samples_per_topic=2)
    expected = Counter(t for item in corpus for t in item.topics) + Counter(
        ["air_defense_system", "arms_deal", "ministerial_visit"])
    assert tally.matches_per_topic == expected
    assert tally.records == 302 and tally.outcomes["dead_letter"] == 1
    assert all(len(samples) == 2 for samples in tally.samples.values())
    text = format_tally(tally, topic="t.articles", watchlist_version="v1", since=None)
    assert "sent nothing, committed nothing" in text
    for topic, count in expected.items():
        assert any(line.split()[:2] == [topic, str(count)] for line in text.splitlines())
    assert "undecodable (not JSON): 1" in text
    assert " in text[" in text or " in title[" in text  # evidence with offsets


@pytest.mark.integration
def test_backtest_cli_reads_retained_articles_since_and_sends_nothing(tmp_path, kafka_bootstrap, topic_prefix):
    topics = Topics(topic_prefix)
    create_topics(kafka_bootstrap, topics.articles)
    recent = labelled_articles(60, id_prefix="recent", seed=5)
    old = labelled_articles(30, id_prefix="old", seed=6)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    ten_days_ago = int((time.time() - 10 * 86400) * 1000)
    for item in old:
        producer.send(topics.articles, key=item.article.id.encode(), value=item.article.encode(),
                      timestamp_ms=ten_days_ago)
    for item in recent:
        producer.send(topics.articles, key=item.article.id.encode(), value=item.article.encode())
    producer.flush()
    producer.close()
    config = write_config(tmp_path, topic_prefix, SEEDS)

    def backtest(*extra):
        done = subprocess.run([sys.executable, "-m", "newswatch", "backtest", "--watchlists", str(SEEDS),
                               "--config", str(config), *extra],
                              cwd=ROOT, env={**__import__("os").environ, BOOTSTRAP_ENV: kafka_bootstrap},
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def counts(output):
        rows = {}
        for line in output.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] in ("air_defense_system", "arms_deal", "ministerial_visit"):
                rows[parts[0]] = int(parts[1])
        return rows

    everything = backtest()
    assert f"backtest: 90 records from {topics.articles}" in everything
    assert counts(everything) == dict(Counter(t for item in recent + old for t in item.topics))
    last_week = backtest("--since", "7d")
    assert "backtest: 60 records" in last_week
    assert counts(last_week) == dict(Counter(t for item in recent for t in item.topics))

    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        assert not {topics.matches, topics.articles_dlq} & set(admin.list_topics()), "backtest must send nothing"
    finally:
        admin.close()


def test_since_must_be_a_duration(tmp_path):
    done = subprocess.run([sys.executable, "-m", "newswatch", "backtest", "--watchlists", str(SEEDS),
                           "--since", "last week", "--config", str(write_config(tmp_path, "x.", SEEDS))],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "is not a duration" in done.stderr
