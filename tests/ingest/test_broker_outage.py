"""The broker is away at start and again later while 1,000 articles are pending: the stage keeps
running, keeps them in the outbox, and once the broker is back every article arrives exactly once.

Uses its own broker (LocalBroker on free ports) so it can stop and start it. The outage lasts
NEWSWATCH_TEST_OUTAGE_S seconds (default 30, as the acceptance asks; lower it for quick local runs).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

import pytest

from newswatch.broker import local
from newswatch.broker.local import LocalBroker, free_port
from newswatch.errors import BrokerError
from newswatch.kafka_settings import Topics

from ingest.feeds_config import FeedConfig
from ingest.metrics import IngestMetrics
from ingest.publish import OutboxPublisher, PublishSettings, kafka_connector
from ingest.seen import IngestStore
from tests.ingest.conftest import local_settings, make_poller
from tests.ingest.feeds_fixture import entries, rss2
from tests.support.kafka import read_records
from tests.support.waiting import async_wait_until

pytestmark = pytest.mark.integration
OUTAGE_S = float(os.environ.get("NEWSWATCH_TEST_OUTAGE_S", "30"))
WORDS = {"en": "Air defence contract number", "ru": "Контракт на ПВО номер", "ar": "عقد دفاع جوي رقم"}


def bulk_feed(index: int, count: int) -> bytes:
    lang = ("en", "ru", "ar")[index % 3]
    texts = [(f"{WORDS[lang]} {index}-{n}", f"<p>{WORDS[lang]} {n}</p>") for n in range(count)]
    return rss2(f"bulk {index}", lang, entries(texts, f"http://bulk{index}.test/n", f"tag:bulk{index},"))


def port_is_free_for_a_listener(port: int, host: str = local.HOST) -> bool:
    """Like local.port_is_free, but with SO_REUSEADDR as the JVM's listener uses: the old broker's
    closed connections linger in TIME_WAIT for a minute and do not stop a new listener."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


@pytest.fixture
def own_broker(kafka_bootstrap, monkeypatch):  # kafka_bootstrap: only to share its skip/fail policy when Java is missing
    monkeypatch.setattr(local, "port_is_free", port_is_free_for_a_listener)
    data_dir = Path(tempfile.mkdtemp(prefix="newswatch-outage-kafka-"))
    broker = LocalBroker(data_dir=data_dir, port=free_port(), controller_port=free_port(), heap_mb=512)
    # newswatch.broker.local.new_cluster_id() can draw an id starting with "-", which kafka-storage
    # then reads as an option (about 1 start in 64); fix the id up front so this test is not flaky.
    (data_dir / "broker.json").write_text(json.dumps({"cluster_id": "nwOutageTestCluster0Aw"}))
    yield broker
    broker.stop(timeout=30)
    shutil.rmtree(data_dir, ignore_errors=True)


def start_broker(broker: LocalBroker, timeout: float = 120) -> str:
    """Start, retrying while the old listener's port is still held by the kernel after a stop."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            status, _ = broker.start(timeout=timeout)
            return status.bootstrap
        except BrokerError as exc:
            if "already in use" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(1)


async def test_broker_down_at_start_and_mid_run_loses_nothing_and_duplicates_nothing(feed_server, tmp_path,
                                                                                    own_broker, topic_prefix):
    bootstrap = f"127.0.0.1:{own_broker.port}"
    topic = Topics(topic_prefix).articles
    feed_server.serve_feed("/early.rss", bulk_feed(99, 50))
    for index in range(10):
        feed_server.serve_feed(f"/bulk{index}.rss", bulk_feed(index, 100))
    early = [FeedConfig(url=feed_server.url("/early.rss"))]
    bulk = [FeedConfig(url=feed_server.url(f"/bulk{index}.rss")) for index in range(10)]

    store = IngestStore.in_dir(tmp_path / "state")
    metrics = IngestMetrics()
    publisher = OutboxPublisher(store, kafka_connector(bootstrap, topic), topic, metrics,
                                PublishSettings(backoff_max_s=2.0))
    stop = asyncio.Event()
    publishing = asyncio.create_task(publisher.run(stop))
    settings = local_settings()

    # 1. No broker at all: articles wait in the outbox, the publisher keeps trying.
    poller = make_poller(early, store, settings, on_queued=publisher.wake)
    assert sum(r.queued for r in await poller.poll_all()) == 50
    await asyncio.sleep(3)
    assert not publishing.done() and store.pending_count() == 50
    await asyncio.to_thread(start_broker, own_broker)
    await async_wait_until(lambda: store.pending_count() == 0, 120, "early articles never acknowledged")

    # 2. The broker goes away mid-run while 1,000 new articles are pending.
    await asyncio.to_thread(own_broker.stop, 30)
    poller = make_poller(bulk, store, settings, client=poller.client, on_queued=publisher.wake)
    assert sum(r.queued for r in await poller.poll_all()) == 1000
    await asyncio.sleep(OUTAGE_S)
    assert not publishing.done(), "the publisher gave up while the broker was away"
    assert store.pending_count() == 1000  # nothing acknowledged, nothing dropped
    await asyncio.to_thread(start_broker, own_broker)
    await async_wait_until(lambda: store.pending_count() == 0, 180, "pending articles never acknowledged")

    stop.set()
    await asyncio.wait_for(publishing, 30)
    await poller.client.aclose()
    assert store.published_count() == 1050
    store.close()

    records = read_records(bootstrap, topic, min_count=1050, timeout=120, settle=5)
    keys = [record.key.decode() for record in records]
    assert len(keys) == 1050, f"{len(keys) - len(set(keys))} duplicates"
    assert len(set(keys)) == 1050
