"""The console's store fed from the real broker: rebuilt from Kafka when missing, bounded by the
retention, resumed from its own offsets, with no consumer group; and ingest's feed-health topic."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone

import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType

from alerts.records import AlertDeadLetter, PendingDelivery
from console.feeder import Feeder
from console.store import Store, StoryFilter
from ingest.feeds_config import FeedConfig
from ingest.health import FeedHealthPublisher, feed_id, health_of, kafka_health_connector
from ingest.seen import FeedState
from newswatch.kafka_settings import Topics
from tests.console import factories as f
from tests.support.kafka import create_topics, read_records
from tests.support.waiting import async_wait_until

pytestmark = pytest.mark.integration
RETENTION_S = 7 * 86400.0


def produce(bootstrap: str, records: list[tuple[str, bytes | None, bytes | None, int | None]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for topic, key, value, timestamp_ms in records:
        producer.send(topic, key=key, value=value, timestamp_ms=timestamp_ms)
    producer.flush(10)
    producer.close()


async def fill(store: Store, bootstrap: str, until, message: str) -> Feeder:
    feeder = Feeder(store, bootstrap, RETENTION_S)
    stop = asyncio.Event()
    task = asyncio.create_task(feeder.run(stop))
    try:
        await async_wait_until(lambda: until(store), 60, message)
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
    return feeder


async def test_store_is_rebuilt_from_kafka_within_the_retention_and_resumes(kafka_bootstrap, topic_prefix, tmp_path):
    topics = Topics(topic_prefix)
    kinds = f.kinds(topic_prefix)
    create_topics(kafka_bootstrap, kinds.matches, partitions=2)
    create_topics(kafka_bootstrap, kinds.alerts_state, kinds.feed_health, compact=True)
    create_topics(kafka_bootstrap, kinds.alerts_dlq)
    now = datetime.now(timezone.utc)
    old = f.article("old-1", *f.RUSSIAN_S400, "ru", at=now - timedelta(days=10))
    seed = f.article("seed-1", f.SEED_TITLE, f.SEED_TEXT, "ar", at=now)
    pending = PendingDelivery(id="msg_f1", subscription="desk", story_id="st-seed-1", body="{}", created_at=now,
                              next_attempt_at=now, attempts=4)
    letter = AlertDeadLetter.from_pending(pending, "retries_exhausted", now)
    feed = FeedConfig(url="https://feeds.example/rss", name="Example")
    health = health_of(feed, FeedState(url=feed.url, consecutive_failures=2, last_error="timeout: slow"), now)
    old_ms = int((now - timedelta(days=10)).timestamp() * 1000)
    produce(kafka_bootstrap, [
        (kinds.matches, b"st-old-1", f.match_bytes(old, at=now - timedelta(days=10)), old_ms),
        (kinds.matches, b"st-seed-1", f.match_bytes(seed), None),
        (kinds.alerts_state, b"pending/msg_f1", pending.encode(), None),
        (kinds.alerts_dlq, b"msg_f1", letter.encode(), None),
        (kinds.feed_health, health.feed_id.encode(), health.encode(), None)])

    def complete(store):
        counts = store.counts()
        return counts["articles"] >= 1 and counts["dead_letters"] == 1 and counts["feeds"] == 1

    path = tmp_path / "console.db"
    store = Store(path, kinds)
    assert store.created
    await fill(store, kafka_bootstrap, complete, "the store fills from Kafka")
    first = {"stories": [s["story_id"] for s in store.stories(StoryFilter())], "counts": store.counts()}
    assert first["stories"] == ["st-seed-1"]  # the 10-day-old match is beyond the 7-day retention
    assert [d["status"] for d in store.deliveries()] == ["dead"]
    assert store.feeds(int(time.time() * 1000))[0]["last_error"] == "timeout: slow"
    store.close()

    path.unlink()
    for suffix in ("-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    rebuilt = Store(path, kinds)
    assert rebuilt.created
    await fill(rebuilt, kafka_bootstrap, complete, "the deleted store is rebuilt")
    assert [s["story_id"] for s in rebuilt.stories(StoryFilter())] == first["stories"]
    assert rebuilt.counts() == first["counts"]
    assert rebuilt.stories(StoryFilter(q="لافروف"))
    rebuilt.close()

    more = f.article("ru-2", *f.RUSSIAN_S400, "ru", at=datetime.now(timezone.utc))
    produce(kafka_bootstrap, [(kinds.matches, b"st-ru-2", f.match_bytes(more), None)])
    resumed = Store(path, kinds)
    assert not resumed.created
    feeder = await fill(resumed, kafka_bootstrap, lambda s: s.counts()["articles"] == 2, "the new match arrives")
    assert feeder.consumed == 1  # from its own offsets: nothing read twice
    assert [s["story_id"] for s in resumed.stories(StoryFilter(q="С-400"))] == ["st-ru-2"]
    resumed.close()

    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        groups = [str(g) for g in admin.list_groups()]
        assert not [g for g in groups if topic_prefix in g or "newswatch-console" in g]  # the console joins no group
    finally:
        admin.close()
    assert topics.prefix == topic_prefix


async def test_ingest_publishes_each_feeds_newest_health_to_a_compacted_topic(kafka_bootstrap, topic_prefix):
    topic = Topics(topic_prefix).name("feed-health")
    publisher = FeedHealthPublisher(kafka_health_connector(kafka_bootstrap, topic), topic, interval_s=0.1)
    stop = asyncio.Event()
    task = asyncio.create_task(publisher.run(stop))
    feed = FeedConfig(url="https://feeds.example/rss?key=SECRETKEY", name="Keyed")
    now = datetime.now(timezone.utc)
    try:
        publisher.note(health_of(feed, FeedState(url=feed.url, consecutive_failures=1, last_error="http_500"), now))
        publisher.note(health_of(feed, FeedState(url=feed.url, consecutive_failures=0, articles_total=3), now))
        await async_wait_until(lambda: publisher.sent >= 1, 60, "health is sent")
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
    records = await asyncio.to_thread(read_records, kafka_bootstrap, topic, min_count=1)
    assert len(records) == 1  # only the newest state of a feed waits to be sent
    assert records[0].key == feed_id(feed.url).encode()
    text = records[0].value.decode()
    assert '"articles_total":3' in text and "SECRETKEY" not in text and '"url":"https://feeds.example/rss"' in text
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        assert "compact" in str(described)
    finally:
        admin.close()


async def test_a_topic_created_after_the_console_started_is_read(kafka_bootstrap, topic_prefix, tmp_path):
    kinds = f.kinds(topic_prefix)
    create_topics(kafka_bootstrap, kinds.matches)
    seed = f.article("seed-1", f.SEED_TITLE, f.SEED_TEXT, "ar", at=datetime.now(timezone.utc))
    produce(kafka_bootstrap, [(kinds.matches, b"st-seed-1", f.match_bytes(seed), None)])
    store = Store(tmp_path / "console.db", kinds)
    feeder = Feeder(store, kafka_bootstrap, RETENTION_S)
    stop = asyncio.Event()
    task = asyncio.create_task(feeder.run(stop))
    try:
        await async_wait_until(lambda: store.counts()["articles"] == 1, 60, "the match is read")
        # ingest starts later and creates the feed-health topic: the running console finds it
        feed = FeedConfig(url="https://feeds.example/late", name="Late")
        health = health_of(feed, FeedState(url=feed.url, consecutive_failures=1, last_error="http_404: HTTP 404"),
                           datetime.now(timezone.utc))
        create_topics(kafka_bootstrap, kinds.feed_health, compact=True)
        produce(kafka_bootstrap, [(kinds.feed_health, health.feed_id.encode(), health.encode(), None)])
        await async_wait_until(lambda: store.counts()["feeds"] == 1, 60, "the late topic's record is read")
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
        store.close()
