"""Publish queued articles from the outbox to Kafka, and advance the seen-state only on ack.

`OutboxPublisher.run()` is a loop: connect (create the topic if missing, build an idempotent
acks=all producer; retried with backoff while the broker is away, never giving up), send what
the outbox holds in order with key = article id, and when the broker acknowledges a record mark
it published in the state file. A record whose send fails stays in the outbox and is sent again
after a backoff; records still inside the producer are never re-sent (that would duplicate them).
The producer itself retries idempotently across a broker restart, so a broker that is down for
a while costs time, not records.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass

from kafka import KafkaProducer
from kafka.errors import KafkaError

from newswatch.logs import log_event
from newswatch.topic_setup import TopicSpec, ensure_topics

from ingest.metrics import IngestMetrics
from ingest.seen import IngestStore, PendingArticle

log = logging.getLogger("ingest.publish")
RECONNECT_AFTER_FAILURES = 5


@dataclass(frozen=True)
class PublishSettings:
    max_in_flight: int = 2000
    batch: int = 500
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    # How long the producer keeps retrying one record by itself (idempotently) before reporting
    # failure; long enough to ride out a broker restart without us re-sending anything.
    delivery_timeout_ms: int = 300_000
    shutdown_grace_s: float = 10.0


def ensure_topic(bootstrap: str, topic: str, partitions: int = 3) -> None:
    """Create `topic` when it does not exist (the broker's default replication)."""
    # Short bootstrap and reconnect waits: the caller retries with its own backoff, and a broker
    # that comes back should be noticed within seconds, not after kafka-python's 30 s defaults.
    ensure_topics(bootstrap, [TopicSpec(topic, partitions)], client_id="newswatch-ingest-admin",
                  bootstrap_timeout_ms=5_000)


def make_producer(bootstrap: str, settings: PublishSettings = PublishSettings()) -> KafkaProducer:
    return KafkaProducer(
        bootstrap_servers=bootstrap, client_id="newswatch-ingest",
        acks="all", enable_idempotence=True, max_in_flight_requests_per_connection=5,
        linger_ms=20, compression_type=None,
        delivery_timeout_ms=settings.delivery_timeout_ms, request_timeout_ms=30_000,
        max_block_ms=10_000, reconnect_backoff_max_ms=1_000, bootstrap_timeout_ms=5_000)


def kafka_connector(bootstrap: str, topic: str, settings: PublishSettings = PublishSettings(), *,
                    partitions: int = 3) -> Callable[[], KafkaProducer]:
    """A blocking function that ensures the topic (with `partitions` when it creates it) and returns
    a connected producer."""
    def connect() -> KafkaProducer:
        ensure_topic(bootstrap, topic, partitions)
        return make_producer(bootstrap, settings)
    return connect


class OutboxPublisher:
    """Moves articles from the state file's outbox to a Kafka topic; one per poller."""

    def __init__(self, store: IngestStore, connect: Callable[[], KafkaProducer], topic: str,
                 metrics: IngestMetrics, settings: PublishSettings = PublishSettings(),
                 rand: Callable[[], float] = random.random, before_send: Callable[[], None] | None = None):
        self.store = store
        # Shared mode (ingest/shared.py): makes the state topic hold each article as pending before
        # the article itself is sent; runs in the sending thread and raises KafkaError when it cannot.
        self._before_send = before_send
        self.topic = topic
        self.metrics = metrics
        self.settings = settings
        self._connect = connect
        self._rand = rand
        self._producer: KafkaProducer | None = None
        self._in_flight: dict[str, int] = {}  # article id -> outbox seq
        self._cursor = 0
        self._acked: list[str] = []
        self._failed: list[tuple[PendingArticle, BaseException]] = []
        self._wake = asyncio.Event()
        self._failures = 0
        self.published = 0

    def wake(self) -> None:
        """New articles were queued: look at the outbox now instead of at the next tick."""
        self._wake.set()

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    async def run(self, stop: asyncio.Event) -> None:
        """Publish until `stop` is set, then flush for up to shutdown_grace_s and close."""
        loop = asyncio.get_running_loop()
        self.metrics.outbox_pending.set(self.store.pending_count())
        try:
            while not stop.is_set():
                self._settle()
                if self._producer is None:
                    if not await self._try_connect(stop):
                        continue
                sent = await self._send_some(loop)
                if sent is None:  # a send failed: wait before the next try
                    await self._pause(stop, self._backoff())
                elif sent == 0:
                    await self._pause(stop, 1.0)
        finally:
            await self._shutdown()

    async def _try_connect(self, stop: asyncio.Event) -> bool:
        try:
            self._producer = await asyncio.to_thread(self._connect)
        except Exception as exc:  # NoBrokersAvailable, timeouts, anything: never exit, retry
            self.metrics.broker_connected.set(0)
            self.metrics.publish_errors.labels(reason="connect").inc()
            delay = self._backoff()
            log_event(log, logging.WARNING, "kafka_unavailable", topic=self.topic, reason=type(exc).__name__,
                      detail=str(exc)[:200], retry_in_s=round(delay, 1), pending=self.store.pending_count())
            await self._pause(stop, delay)
            return False
        self._failures = 0
        self.metrics.broker_connected.set(1)
        log_event(log, logging.INFO, "kafka_connected", topic=self.topic, pending=self.store.pending_count())
        return True

    def _backoff(self) -> float:
        self._failures += 1
        ceiling = min(self.settings.backoff_max_s, self.settings.backoff_initial_s * 2 ** min(self._failures - 1, 20))
        return ceiling * (0.5 + 0.5 * self._rand())

    async def _pause(self, stop: asyncio.Event, seconds: float) -> None:
        self._wake.clear()
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def _send_some(self, loop: asyncio.AbstractEventLoop) -> int | None:
        room = self.settings.max_in_flight - len(self._in_flight)
        if room <= 0:
            return 0
        batch = [row for row in self.store.pending_after(self._cursor, min(room, self.settings.batch))
                 if row.article_id not in self._in_flight]
        if not batch:
            return 0
        try:
            sent = await asyncio.to_thread(self._send_batch, batch, loop)
        except KafkaError as exc:  # send() itself failed: buffer full or metadata unavailable
            self.metrics.publish_errors.labels(reason=type(exc).__name__).inc()
            log_event(log, logging.WARNING, "kafka_send_failed", topic=self.topic, reason=type(exc).__name__,
                      detail=str(exc)[:200], in_flight=len(self._in_flight))
            if self._failures >= RECONNECT_AFTER_FAILURES:
                # A producer can end up in a state it does not leave (e.g. a fatal idempotence error);
                # a fresh one costs a reconnect. Records it still held fail and are sent again.
                await self._drop_producer()
            return None
        return sent

    async def _drop_producer(self) -> None:
        producer, self._producer = self._producer, None
        self.metrics.broker_connected.set(0)
        if producer is not None:
            await asyncio.to_thread(producer.close, 5)

    def _send_batch(self, batch: list[PendingArticle], loop: asyncio.AbstractEventLoop) -> int:
        """Runs in a worker thread: producer.send() may block while metadata is unavailable."""
        if self._before_send is not None:
            self._before_send()
        sent = 0
        for row in batch:
            future = self._producer.send(self.topic, key=row.article_id.encode("utf-8"), value=row.payload)
            loop.call_soon_threadsafe(self._in_flight.__setitem__, row.article_id, row.seq)
            future.add_callback(lambda _meta, row=row: loop.call_soon_threadsafe(self._on_ack, row))
            future.add_errback(lambda exc, row=row: loop.call_soon_threadsafe(self._on_error, row, exc))
            loop.call_soon_threadsafe(self._advance_cursor, row.seq)
            sent += 1
        return sent

    def _advance_cursor(self, seq: int) -> None:
        self._cursor = max(self._cursor, seq)

    def _on_ack(self, row: PendingArticle) -> None:
        self._acked.append(row.article_id)
        self._wake.set()

    def _on_error(self, row: PendingArticle, exc: BaseException) -> None:
        self._failed.append((row, exc))
        self._wake.set()

    def _settle(self) -> None:
        """Record acknowledgements in the state file and rewind the cursor for failed sends."""
        if self._acked:
            acked, self._acked = self._acked, []
            self.store.mark_published(acked)
            for article_id in acked:
                self._in_flight.pop(article_id, None)
            self.published += len(acked)
            self.metrics.articles_published.inc(len(acked))
            self._failures = 0  # the broker answers again: the next trouble starts from a short backoff
        if self._failed:
            failed, self._failed = self._failed, []
            for row, exc in failed:
                self._in_flight.pop(row.article_id, None)
                self._cursor = min(self._cursor, row.seq - 1)
                self.metrics.publish_errors.labels(reason=type(exc).__name__).inc()
            log_event(log, logging.WARNING, "kafka_delivery_failed", topic=self.topic, records=len(failed),
                      reason=type(failed[0][1]).__name__, detail=str(failed[0][1])[:200])
        self.metrics.outbox_pending.set(self.store.pending_count())

    async def _shutdown(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                await asyncio.to_thread(producer.flush, self.settings.shutdown_grace_s)
            except KafkaError as exc:
                log_event(log, logging.WARNING, "kafka_flush_incomplete", reason=type(exc).__name__,
                          in_flight=len(self._in_flight))
            await asyncio.sleep(0)  # let the ack callbacks scheduled by flush run
            self._settle()
            await asyncio.to_thread(producer.close, 5)
        self.metrics.broker_connected.set(0)
        log_event(log, logging.INFO, "publisher_stopped", published=self.published,
                  pending=self.store.pending_count())
