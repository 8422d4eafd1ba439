"""Feed health on Kafka: after every poll, the feed's state goes to the compacted topic
`<prefix>feed-health`, keyed by feed id, so readers (the web console) see the latest state of
every feed without asking ingest, even while ingest is down.

Why a compacted topic and not ingest's metrics endpoint: Kafka is where the stages already meet;
compaction keeps exactly one record per feed (the newest) for as long as the feed exists, so a
reader started later, or restarted with an empty store, rebuilds the whole table from the topic;
and the metrics deliberately carry no per-feed labels (thousands of series). Publishing is
best-effort and never holds up polling: only each feed's newest state waits, in memory, and a
broker that is away costs stale health, never articles.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from datetime import datetime
from typing import ClassVar, Literal

import pydantic

from newswatch.logs import log_event, safe_url
from newswatch.schemas import Record, UtcDatetime

from ingest.feeds_config import FeedConfig
from ingest.seen import FeedState

log = logging.getLogger("ingest.health")
FEED_HEALTH_SCHEMA = "newswatch.feed_health/v1"
FEED_HEALTH_SUFFIX = "feed-health"


def feed_id(url: str) -> str:
    """A feed's id: stable for its URL, and revealing nothing of it (a URL may hold a token)."""
    return "fd-" + hashlib.blake2b(url.encode("utf-8"), digest_size=8).hexdigest()


class FeedHealth(Record):
    """One feed's state after its latest poll (no validators, no query string, no user info)."""

    SCHEMA: ClassVar[str] = FEED_HEALTH_SCHEMA
    schema_: Literal["newswatch.feed_health/v1"] = pydantic.Field(default=FEED_HEALTH_SCHEMA, alias="schema")
    feed_id: str
    name: str
    url: str  # safe_url: scheme, host and path only
    lang: str | None = None
    last_attempt_at: UtcDatetime | None = None
    last_success_at: UtcDatetime | None = None
    last_outcome: str | None = None
    consecutive_failures: int = 0
    last_error: str | None = None
    next_poll_at: UtcDatetime | None = None
    articles_total: int = 0
    interval_s: float | None = None
    reported_at: UtcDatetime


def health_of(feed: FeedConfig, state: FeedState, now: datetime) -> FeedHealth:
    """The record for `feed` in `state` (pure)."""
    return FeedHealth(feed_id=feed_id(feed.url), name=feed.display_name, url=safe_url(feed.url), lang=feed.lang,
                      last_attempt_at=state.last_attempt_at, last_success_at=state.last_success_at,
                      last_outcome=state.last_outcome, consecutive_failures=state.consecutive_failures,
                      last_error=state.last_error, next_poll_at=state.next_poll_at,
                      articles_total=state.articles_total, interval_s=state.interval_s, reported_at=now)


class FeedHealthPublisher:
    """Keeps each feed's newest FeedHealth and sends them to the topic from a background loop."""

    def __init__(self, connect: Callable[[], object], topic: str, interval_s: float = 1.0):
        self._connect = connect  # blocking: ensures the topic, returns a kafka-python producer
        self.topic = topic
        self.interval_s = interval_s
        self._latest: dict[str, bytes] = {}
        self._wake = asyncio.Event()
        self.sent = 0

    def note(self, health: FeedHealth) -> None:
        self._latest[health.feed_id] = health.encode()
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        producer = None
        backoff = 1.0
        try:
            while not stop.is_set():
                if producer is None:
                    try:
                        producer = await asyncio.to_thread(self._connect)
                        backoff = 1.0
                    except Exception as exc:  # the broker is away: health waits, polling does not
                        log_event(log, logging.DEBUG, "feed_health_unavailable", error=type(exc).__name__)
                        await _wait(stop, backoff)
                        backoff = min(backoff * 2, 30.0)
                        continue
                if self._latest:
                    batch, self._latest = self._latest, {}
                    try:
                        await asyncio.to_thread(self._send, producer, batch)
                        self.sent += len(batch)
                    except Exception as exc:
                        log_event(log, logging.DEBUG, "feed_health_send_failed", error=type(exc).__name__)
                        for key, value in batch.items():
                            self._latest.setdefault(key, value)
                self._wake.clear()
                await _wait_any(stop, self._wake, self.interval_s)
        finally:
            if producer is not None:
                await asyncio.to_thread(producer.close, 5)

    def _send(self, producer, batch: dict[str, bytes]) -> None:
        for key, value in batch.items():
            producer.send(self.topic, key=key.encode("utf-8"), value=value)
        producer.flush(10)


def kafka_health_connector(bootstrap: str, topic: str) -> Callable[[], object]:
    def connect():
        from kafka import KafkaProducer

        from newswatch.topic_setup import TopicSpec, ensure_topics

        ensure_topics(bootstrap, [TopicSpec(topic, 1, compacted=True)], client_id="newswatch-ingest-admin",
                      bootstrap_timeout_ms=5_000)
        return KafkaProducer(bootstrap_servers=bootstrap, client_id="newswatch-ingest-health", acks=1,
                             linger_ms=50, max_block_ms=5_000, bootstrap_timeout_ms=5_000)
    return connect


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass


async def _wait_any(stop: asyncio.Event, wake: asyncio.Event, seconds: float) -> None:
    waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waits:
            task.cancel()
