"""The faust agent and timers of the processor: thin loops that hand batches of records to the
pure pipeline (processors.pipeline) and send what it returns.

Agent concurrency stays at 1: with several concurrent instances faust can commit the offset of a
later record before an earlier one is done (faust-streaming issue #606), which would skip articles
after a crash. Throughput comes from batching (`stream.take_events`) instead.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable
from datetime import datetime, timezone

import faust
from faust.types import TP

from newswatch.logs import log_event
from processors.metrics import ProcessorMetrics, consumer_lag
from processors.pipeline import ArticleProcessor, InboundRecord
from processors.reload import WatchlistReloader
from processors.topics import ProcessorTopics

log = logging.getLogger("newswatch.processors")

AGENT_NAME = "articles-to-matches"


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def inbound(event: faust.EventT) -> InboundRecord:
    """The pipeline's view of a faust event (raw key and value bytes, timestamp in ms)."""
    message = event.message
    return InboundRecord(topic=message.topic, partition=message.partition, offset=message.offset,
                         timestamp_ms=round(message.timestamp * 1000), key=message.key, value=message.value)


def register_processor_agent(app: faust.App, topics: ProcessorTopics, processor: ArticleProcessor,
                             metrics: ProcessorMetrics, *, batch_size: int, batch_within: float,
                             clock: Callable[[], datetime] = utc_now) -> faust.types.AgentT:
    """Add the articles -> matches agent to `app`; returns the agent."""
    next_offsets: dict[int, int] = {}

    @app.agent(topics.articles, name=AGENT_NAME, concurrency=1)
    async def articles_to_matches(stream):
        # A batch queues one or two table changelog writes per match at once; faust's default of
        # 100 queued writes would warn and stall on every batch with many matches.
        app.producer.buffer.max_messages = max(app.producer.buffer.max_messages, 4 * batch_size)
        async for events in stream.take_events(batch_size, within=batch_within):
            started = time.perf_counter()
            records = [inbound(event) for event in events]
            now = clock()
            report = processor.process(records, now)
            # Sent before take_events acks the batch, and faust flushes the producer before it
            # commits offsets: a match is in Kafka before its article counts as consumed.
            for key, value in report.match_messages():
                await topics.matches.send(key=key, value=value)
            for key, dead_letter in report.dead_letters:
                await topics.articles_dlq.send(key=key, value=dead_letter.encode())
            for record in records:
                next_offsets[record.partition] = max(next_offsets.get(record.partition, 0), record.offset + 1)
            metrics.observe_batch(report, len(records), time.perf_counter() - started,
                                  int(clock().timestamp() * 1000))
            highwaters = {p: app.consumer.highwater(TP(topics.articles.get_topic_name(), p)) for p in next_offsets}
            metrics.observe_lag(consumer_lag(highwaters, next_offsets))

    @app.on_partitions_assigned.connect
    async def rebuild_stories_after_rebalance(sender, assigned, **kwargs) -> None:
        # The story index is rebuilt from the (recovered) stories table before the next batch.
        processor.reset_stories()

    return articles_to_matches


def register_watchlist_reloads(app: faust.App, reloader: WatchlistReloader, metrics: ProcessorMetrics, *,
                               interval: float) -> None:
    """Poll the watchlist folder every `interval` seconds, and reload at once on SIGHUP."""
    metrics.set_watchlist(reloader.current.version)

    def poll() -> None:
        outcome = reloader.poll()
        if outcome.reason != "unchanged":
            metrics.reloads.labels(outcome.reason).inc()
            metrics.set_watchlist(outcome.version)

    @app.timer(interval=interval, name="watchlist-reload")
    async def poll_watchlists() -> None:
        poll()

    @app.task
    async def reload_on_sighup() -> None:
        def requested() -> None:
            log_event(log, logging.INFO, "watchlists_reload_requested", signal="SIGHUP")
            reloader.request()
            poll()

        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, requested)
