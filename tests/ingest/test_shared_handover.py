"""A new owner taking over a partition from a poller that died mid-publish (real broker): of the
articles the old one queued, the one already on the articles topic is not sent again, the other
is sent once; seen-ids, validators and schedule come with the partition."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from newswatch.topic_setup import TopicSpec, ensure_topics

from ingest.feeds_config import FeedConfig
from ingest.metrics import IngestMetrics
from ingest.publish import OutboxPublisher, make_producer
from ingest.seen import FeedState
from ingest.shared import (SharedIngest, SharedStore, StateWriter, feed_state_record, make_state_producer,
                           outbox_record, partition_for, read_state, seen_record)
from tests.ingest.conftest import local_settings, make_poller
from tests.support.kafka import read_records
from tests.support.waiting import async_wait_until

pytestmark = pytest.mark.integration
PARTITIONS = 3


async def test_a_new_owner_sends_only_what_the_dead_one_did_not_and_keeps_its_validators(kafka_bootstrap,
                                                                                         topic_prefix):
    state_topic, articles = f"{topic_prefix}feed-state", f"{topic_prefix}articles"
    ensure_topics(kafka_bootstrap, [TopicSpec(state_topic, PARTITIONS, compacted=True), TopicSpec(articles, 3)])
    feed = FeedConfig(url="http://127.0.0.9:8080/desk.xml", interval=300)
    part = partition_for(feed.host, PARTITIONS)
    due = datetime.now(timezone.utc) + timedelta(minutes=4)
    queued = time.time() - 5
    dead = FeedState(feed.url, etag='"e7"', interval_s=300.0, next_poll_at=due, last_outcome="new", articles_total=2)

    # What the dead poller got out: its feed state, both articles as pending, the keys of the first
    # only (it died before writing the second's), and the first article itself.
    producer = make_state_producer(kafka_bootstrap)
    for key, value in [feed_state_record(dead),
                       outbox_record("art-a", feed.url, b'{"id":"art-a"}', queued, ["key-a"]),
                       seen_record("key-a", "art-a", queued),
                       outbox_record("art-b", feed.url, b'{"id":"art-b"}', queued, ["key-b", "key-b2"])]:
        producer.send(state_topic, key=key.encode(), value=value, partition=part)
    producer.send(articles, key=b"art-a", value=b'{"id":"art-a"}')
    producer.flush(30)
    producer.close(5)

    writer = StateWriter(make_state_producer(kafka_bootstrap), state_topic, PARTITIONS)
    store = SharedStore(writer, retention_days=180)
    metrics = IngestMetrics()
    publisher = OutboxPublisher(store, lambda: make_producer(kafka_bootstrap), articles, metrics,
                                before_send=writer.flush)
    poller = make_poller([], store, local_settings(), metrics=metrics)
    coordinator = SharedIngest(poller=poller, store=store, writer=writer, bootstrap=kafka_bootstrap,
                               state_topic=state_topic, articles_topic=articles, grace_s=10, wake=publisher.wake)
    try:
        await coordinator.adopt(part, [feed], 0)
        assert [row.article_id for row in store.pending_after(0, 10)] == ["art-b"]
        assert store.unseen([SimpleNamespace(keys=("key-a",)), SimpleNamespace(keys=("key-b2",))]) == []
        carried = poller.states[feed.url]
        assert (carried.etag, carried.next_poll_at, carried.interval_s) == ('"e7"', due, 300.0)

        stop = asyncio.Event()
        task = asyncio.create_task(publisher.run(stop))
        await async_wait_until(lambda: store.pending_count() == 0, 60, "the requeued article was not published")
        stop.set()
        await task
        await asyncio.to_thread(writer.flush, 30)

        keys = Counter(record.key for record in read_records(kafka_bootstrap, articles, min_count=2, settle=2))
        assert keys == {b"art-a": 1, b"art-b": 1}
        after = await asyncio.to_thread(read_state, kafka_bootstrap, state_topic, [part])
        assert after.pending == {}  # both acknowledged: tombstones
        assert set(after.seen) == {"key-a", "key-b", "key-b2"}  # the keys the dead one did not write

        # Giving the partition away forgets it here; its state stays on the topic.
        await coordinator.revoke({part}, 1)
        assert poller.feeds == [] and coordinator.owned == {}
        assert store.unseen([SimpleNamespace(keys=("key-a",))]) != []
    finally:
        writer.close()
        store.close()
        await poller.client.aclose()
