"""`newswatch backtest`: run draft watchlists over the articles retained in Kafka and say what they
would have matched. It reads with a fresh consumer that has no group (commits nothing) and sends
nothing; the same pipeline as the worker decides, with its state kept in memory.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from newswatch.errors import BrokerError
from newswatch.topic_setup import quiet_kafka_logs, wait_reachable
from newswatch.schemas import Match
from processors.pipeline import ArticleProcessor, BatchReport, Detector, InboundRecord, MemoryState
from processors.stories import Sketcher, StoryIndex

CHUNK = 1000
# A broker that takes a TCP connection within this is there; else backtest says so at once.
REACH_TIMEOUT_S = 5.0


@dataclass
class BacktestTally:
    """Counts and a few sample matches per topic, accumulated batch by batch (memory stays bounded)."""

    samples_per_topic: int = 3
    records: int = 0
    outcomes: Counter = field(default_factory=Counter)
    matches_per_topic: Counter = field(default_factory=Counter)
    stories_per_topic: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    samples: dict[str, list[Match]] = field(default_factory=lambda: defaultdict(list))
    dead_letter_reasons: Counter = field(default_factory=Counter)

    def add(self, report: BatchReport, size: int) -> None:
        self.records += size
        self.outcomes.update(report.outcomes)
        for match in report.matches:
            for hit in match.topics:
                self.matches_per_topic[hit.topic] += 1
                self.stories_per_topic[hit.topic].add(match.story_id)
                if len(self.samples[hit.topic]) < self.samples_per_topic:
                    self.samples[hit.topic].append(match)
        for _, dead_letter in report.dead_letters:
            self.dead_letter_reasons[dead_letter.error.split(":")[0]] += 1


def run_backtest(records: Iterable[InboundRecord], *, detect: Detector, watchlist: Any, now: datetime,
                 similarity: float = 0.5, story_window: timedelta = timedelta(days=3),
                 samples_per_topic: int = 3) -> BacktestTally:
    """Feed `records` through the worker's pipeline with `watchlist`; nothing leaves this function."""
    processor = ArticleProcessor(
        detect=detect, current_watchlist=lambda: watchlist,
        stories=StoryIndex(Sketcher(), similarity=similarity, window_ms=int(story_window.total_seconds() * 1000)),
        processed=MemoryState(), story_state=MemoryState(),
        dedup_retention_ms=10 * 365 * 86_400_000)  # everything read is inside the window: never purge
    tally = BacktestTally(samples_per_topic=samples_per_topic)
    chunk: list[InboundRecord] = []
    for record in records:
        chunk.append(record)
        if len(chunk) >= CHUNK:
            tally.add(processor.process(chunk, now), len(chunk))
            chunk = []
    if chunk:
        tally.add(processor.process(chunk, now), len(chunk))
    return tally


def read_retained(bootstrap: str, topic: str, *, since: datetime | None = None,
                  timeout: float = 60.0) -> Iterator[InboundRecord]:
    """Every record of `topic` from `since` (or the start) up to the end as it was when called.

    No consumer group: nothing is committed and no running worker's group is disturbed.
    """
    wait_reachable(bootstrap, REACH_TIMEOUT_S)  # a dead address is said at once, not after 30 s of silence
    try:
        with quiet_kafka_logs():
            consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                     client_id="newswatch-backtest", request_timeout_ms=30_000,
                                     max_partition_fetch_bytes=8 * 1024 * 1024)
    except KafkaError as exc:
        raise BrokerError(f"cannot reach Kafka at {bootstrap}: {exc}") from None
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise BrokerError(f"topic {topic} does not exist on {bootstrap}; nothing to backtest")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        end = consumer.end_offsets(tps)
        if since is None:
            start = consumer.beginning_offsets(tps)
        else:
            found = consumer.offsets_for_times({tp: int(since.timestamp() * 1000) for tp in tps})
            start = {tp: (found[tp].offset if found.get(tp) else end[tp]) for tp in tps}
        remaining = {tp for tp in tps if start[tp] < end[tp]}
        for tp in tps:
            consumer.seek(tp, start[tp])
        deadline = time.monotonic() + timeout
        while remaining:
            batch = consumer.poll(timeout_ms=500, max_records=CHUNK)
            if not batch and time.monotonic() > deadline:
                raise BrokerError(f"backtest stalled reading {topic}: no records for {timeout:.0f} s")
            for tp, messages in batch.items():
                for message in messages:
                    if message.offset >= end[tp]:
                        break
                    yield InboundRecord(topic=message.topic, partition=message.partition, offset=message.offset,
                                        timestamp_ms=message.timestamp, key=message.key, value=message.value)
                if consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
                deadline = time.monotonic() + timeout
    finally:
        consumer.close()


def format_tally(tally: BacktestTally, *, topic: str, watchlist_version: str, since: datetime | None) -> str:
    """The report people read: per-topic counts, then sample matches with their evidence."""
    window = f"since {since:%Y-%m-%d %H:%M} UTC" if since else "all retained"
    lines = [f"backtest: {tally.records} records from {topic} ({window}), watchlist version {watchlist_version}",
             "sent nothing, committed nothing", ""]
    if tally.matches_per_topic:
        width = max(12, *(len(t) for t in tally.matches_per_topic))
        lines.append(f"{'topic':<{width}}  {'matches':>7}  {'stories':>7}")
        for name, count in sorted(tally.matches_per_topic.items(), key=lambda item: (-item[1], item[0])):
            lines.append(f"{name:<{width}}  {count:>7}  {len(tally.stories_per_topic[name]):>7}")
    else:
        lines.append("no matches")
    lines.append("")
    lines.append("articles: " + ", ".join(f"{k} {tally.outcomes.get(k, 0)}"
                                          for k in ("matched", "no_topics", "duplicate", "dead_letter")))
    for reason, count in tally.dead_letter_reasons.most_common():
        lines.append(f"  undecodable ({reason}): {count}")
    for name in sorted(tally.samples):
        lines.append("")
        lines.append(f"== {name}: sample matches")
        for match in tally.samples[name]:
            hit = next(h for h in match.topics if h.topic == name)
            when = f"{match.published_at:%Y-%m-%d %H:%M}" if match.published_at else "undated"
            lines.append(f"- [{match.lang or '?'}] {when} {match.source or match.feed.url}: {match.title}")
            lines.append(f"  id {match.id}  story {match.story_id}  rule {hit.rule}  score {hit.score:g}")
            for evidence in hit.evidence[:3]:
                lines.append(f"  {evidence.term!r} in {evidence.field}[{evidence.start}:{evidence.end}]: "
                             f"{evidence.snippet}")
    return "\n".join(lines)
