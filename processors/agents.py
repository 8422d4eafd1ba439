"""The faust agents and timers of the processor: thin loops that hand batches of records to the
pure stages and send what they return.

  articles-to-candidates  (articles topic, every partition, any worker): DetectionStage
  candidates-to-matches   (candidates topic, the worker that owns its partition): StoryStage

Agent concurrency stays at 1: with several concurrent instances faust can commit the offset of a
later record before an earlier one is done (faust-streaming issue #606), which would skip articles
after a crash. Throughput comes from batching (`stream.take_events`) instead.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime, timezone

import faust
from faust.types import TP

from newswatch.logs import log_event
from processors.metrics import ProcessorMetrics, consumer_lag
from processors.pipeline import DetectionStage, EncodedDetection, InboundRecord
from processors.reload import WatchlistReloader
from processors.story_stage import StoryStage
from processors.topics import ProcessorTopics

log = logging.getLogger("newswatch.processors")

DETECTION_AGENT = "articles-to-candidates"
STORY_AGENT = "candidates-to-matches"


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def inbound(event: faust.EventT) -> InboundRecord:
    """The stages' view of a faust event (raw key and value bytes, timestamp in ms)."""
    message = event.message
    return InboundRecord(topic=message.topic, partition=message.partition, offset=message.offset,
                         timestamp_ms=round(message.timestamp * 1000), key=message.key, value=message.value)


def owned_partitions(app: faust.App, topic: str) -> Callable[[int], bool]:
    """Whether this worker is, right now, the active owner of `topic`'s partition."""
    def owns(partition: int) -> bool:
        return TP(topic, partition) in app.assignor.assigned_actives()
    return owns


def _widen_producer_buffer(app: faust.App, batch_size: int) -> None:
    # A batch queues one send per candidate or match, and one or two table changelog writes per
    # match, at once; faust's default of 100 queued writes would warn and stall on every batch.
    app.producer.buffer.max_messages = max(app.producer.buffer.max_messages, 4 * batch_size)


# A batch's detection, as the parts of it that are ready, in order (one part, or one per chunk).
DetectBatch = Callable[[Sequence[InboundRecord], datetime], AsyncIterator[EncodedDetection]]


def in_the_loop(detection: DetectionStage) -> DetectBatch:
    """Detection run by the event loop itself (see processors.detect_pool for beside it)."""
    async def detect(records: Sequence[InboundRecord], now: datetime) -> AsyncIterator[EncodedDetection]:
        yield detection.process(records, now).encoded()
    return detect


def register_detection_agent(app: faust.App, topics: ProcessorTopics, detect_batch: DetectBatch,
                             metrics: ProcessorMetrics, *, batch_size: int, batch_within: float,
                             clock: Callable[[], datetime] = utc_now) -> faust.types.AgentT:
    """Add the articles -> candidates agent to `app`; returns the agent."""
    next_offsets: dict[int, int] = {}

    @app.agent(topics.articles, name=DETECTION_AGENT, concurrency=1)
    async def articles_to_candidates(stream):
        _widen_producer_buffer(app, batch_size)
        async for events in stream.take_events(batch_size, within=batch_within):
            started = time.perf_counter()
            records = [inbound(event) for event in events]
            outcomes: Counter = Counter()
            # Sent before take_events acks the batch, and faust flushes the producer before it
            # commits offsets: a candidate is in Kafka before its article counts as consumed.
            # Each part is sent as soon as it is ready (detection in child processes goes on with
            # the next parts meanwhile), in the batch's order.
            async for part in detect_batch(records, clock()):
                for key, value in part.candidates:
                    await topics.candidates.send(key=key, value=value)
                for key, value in part.dead_letters:
                    await topics.articles_dlq.send(key=key, value=value)
                outcomes.update(part.outcomes)
            report = EncodedDetection(candidates=[], dead_letters=[], outcomes=outcomes)
            for record in records:
                next_offsets[record.partition] = max(next_offsets.get(record.partition, 0), record.offset + 1)
            metrics.observe_detection(report, len(records), time.perf_counter() - started)
            # Lag of the partitions this worker holds now (asking for another's asserts in aiokafka).
            name = topics.articles.get_topic_name()
            held = {tp.partition for tp in app.consumer.assignment() if tp.topic == name}
            for partition in set(next_offsets) - held:
                del next_offsets[partition]
                metrics.forget_lag(partition)
            highwaters = {p: app.consumer.highwater(TP(name, p)) for p in next_offsets}
            metrics.observe_lag(consumer_lag(highwaters, next_offsets))

    return articles_to_candidates


def register_story_agent(app: faust.App, topics: ProcessorTopics, story_stage: StoryStage,
                         metrics: ProcessorMetrics, *, batch_size: int, batch_within: float,
                         clock: Callable[[], datetime] = utc_now) -> faust.types.AgentT:
    """Add the candidates -> matches agent to `app`; returns the agent."""

    @app.agent(topics.candidates, name=STORY_AGENT, concurrency=1)
    async def candidates_to_matches(stream):
        _widen_producer_buffer(app, batch_size)
        async for events in stream.take_events(batch_size, within=batch_within):
            started = time.perf_counter()
            records = [inbound(event) for event in events]
            report = story_stage.process(records, clock())
            # As above: matches are in Kafka before faust commits the candidates' offsets.
            for key, value in report.match_messages():
                await topics.matches.send(key=key, value=value)
            for key, dead_letter in report.dead_letters:
                await topics.articles_dlq.send(key=key, value=dead_letter.encode())
            for key, value in report.requeue:  # a partition revoked meanwhile: its owner takes them
                await topics.candidates.send(key=key, value=value)
            metrics.observe_stories(report, len(records), time.perf_counter() - started,
                                    int(clock().timestamp() * 1000))

    @app.on_partitions_assigned.connect
    async def rebuild_stories_after_rebalance(sender, assigned, **kwargs) -> None:
        # The story index is rebuilt from the (recovered) stories table, owned partitions only,
        # before the next batch.
        story_stage.reset()

    return candidates_to_matches


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
