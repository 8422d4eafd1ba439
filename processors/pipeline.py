"""The processor's work on one batch of article records, without Kafka: decode, detect, dedup,
group into stories, build matches and dead letters.

For each record, in order:
  1. decode it as Article v1; anything else becomes a DeadLetter with the reason;
  2. run the detector with the current watchlists; no topic, no match;
  3. ask the dedup memory whether this article id was matched before (dedup.judge): a second
     publication is skipped, a replay of the same record is matched again identically;
  4. put the article in a story (stories.StoryIndex) and build the Match (match.build_match).
The faust agent feeds batches in and sends what comes out; state lives in `KeyValueState`s that
the agent backs with faust tables (changelogged) and tests back with dicts.
"""

from __future__ import annotations

import base64
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from newswatch.errors import SchemaError
from newswatch.logs import log_event
from newswatch.schemas import Article, DeadLetter, Match, TopicHit, decode
from processors import dedup
from processors.match import build_match, detected_at_for
from processors.stories import StoryIndex, StoryRecord

STAGE = "processors"
log = logging.getLogger("newswatch.processors")


class KeyValueState(Protocol):
    """A persisted string -> JSON-object map; writes name the partition whose changelog keeps them."""

    def get(self, key: str) -> dict | None: ...

    def put(self, key: str, value: dict, partition: int) -> None: ...

    def delete(self, key: str, partition: int) -> None: ...

    def items(self) -> Iterable[tuple[str, dict]]: ...


class MemoryState:
    """A KeyValueState in a dict (unit tests and the backtest, where nothing is persisted)."""

    def __init__(self) -> None:
        self.data: dict[str, dict] = {}

    def get(self, key: str) -> dict | None:
        return self.data.get(key)

    def put(self, key: str, value: dict, partition: int) -> None:
        self.data[key] = value

    def delete(self, key: str, partition: int) -> None:
        self.data.pop(key, None)

    def items(self) -> Iterable[tuple[str, dict]]:
        return list(self.data.items())


@dataclass(frozen=True)
class InboundRecord:
    """One record from the articles topic, as the consumer saw it."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None


@dataclass
class BatchReport:
    """What one batch produced: records to send, and counts for metrics and logs."""

    matches: list[Match] = field(default_factory=list)
    dead_letters: list[tuple[bytes | None, DeadLetter]] = field(default_factory=list)
    outcomes: Counter = field(default_factory=Counter)  # matched, no_topics, duplicate, dead_letter
    topics: Counter = field(default_factory=Counter)

    def match_messages(self) -> list[tuple[bytes, bytes]]:
        """(key, value) pairs for the matches topic: keyed by story id."""
        return [(m.story_id.encode(), m.encode()) for m in self.matches]


Detector = Callable[[Article, Any], Sequence[TopicHit]]


def dead_letter_for(record: InboundRecord, reason: str, now: datetime) -> DeadLetter:
    """A DeadLetter that keeps the original bytes (as text when they are UTF-8) and says why."""
    text: str | None = None
    raw64: str | None = None
    if record.value is not None:
        try:
            text = record.value.decode("utf-8")
        except UnicodeDecodeError:
            raw64 = base64.b64encode(record.value).decode("ascii")
    key = record.key.decode("utf-8", errors="replace") if record.key is not None else None
    return DeadLetter(stage=STAGE, error=reason, time=now, topic=record.topic, partition=record.partition,
                      offset=record.offset, key=key, value=text, value_base64=raw64)


class ArticleProcessor:
    """Turns article records into matches and dead letters; one instance per worker.

    `detect(article, watchlist)` and `current_watchlist()` are passed in (the live watchlist can be
    swapped between batches by the reloader); `processed` holds dedup entries, `story_state` the
    open stories. Call `reset_stories()` when partitions move so the index is rebuilt from state.
    """

    def __init__(self, *, detect: Detector, current_watchlist: Callable[[], Any], stories: StoryIndex,
                 processed: KeyValueState, story_state: KeyValueState, dedup_retention_ms: int,
                 purge_every_ms: int = 60_000):
        self._detect = detect
        self._current_watchlist = current_watchlist
        self.stories = stories
        self._processed = processed
        self._story_state = story_state
        self._retention_ms = dedup_retention_ms
        self._purge_every_ms = purge_every_ms
        self._last_purge_ms: int | None = None
        # Retention and story windows run on stream time (the newest record timestamp seen), not
        # the wall clock: a backlog of week-old articles is still deduplicated among itself, and
        # a replay never forgets more than the first pass did.
        self.stream_time_ms: int | None = None
        self._stories_loaded = False

    def reset_stories(self) -> None:
        self._stories_loaded = False

    def _ensure_stories(self) -> None:
        if not self._stories_loaded:
            self.stories.load(StoryRecord.from_json_dict(key, value) for key, value in self._story_state.items())
            self._stories_loaded = True

    def process(self, records: Sequence[InboundRecord], now: datetime) -> BatchReport:
        """Handle `records` in order; `now` (the wall clock) stamps dead letters."""
        self._ensure_stories()
        report = BatchReport()
        watchlist = self._current_watchlist()
        for record in records:
            if self.stream_time_ms is None or record.timestamp_ms > self.stream_time_ms:
                self.stream_time_ms = record.timestamp_ms
            try:
                self._process_one(record, watchlist, now, report)
            except Exception as exc:  # a bug on one record must not stop the stream behind it
                log.error("article_processing_failed", exc_info=True,
                          extra={"fields": {"partition": record.partition, "offset": record.offset}})
                self._dead_letter(record, f"processing failed: {type(exc).__name__}: {exc}", now, report)
        if self.stream_time_ms is not None:
            self._purge(self.stream_time_ms)
        return report

    def _process_one(self, record: InboundRecord, watchlist: Any, now: datetime, report: BatchReport) -> None:
        try:
            article = decode(record.value, Article)
        except SchemaError as exc:
            self._dead_letter(record, exc.reason, now, report)
            return
        try:
            hits = tuple(self._detect(article, watchlist))
        except Exception as exc:  # a detector bug must not stop the stream; the record is kept
            self._dead_letter(record, f"detector failed: {type(exc).__name__}: {exc}", now, report)
            return
        if not hits:
            report.outcomes["no_topics"] += 1
            return
        previous = self._processed.get(article.id)
        verdict = dedup.judge(dedup.Seen.from_json_dict(previous) if previous else None,
                              record.partition, record.offset)
        if verdict is dedup.Verdict.DUPLICATE:
            report.outcomes["duplicate"] += 1
            return
        assignment = self.stories.assign(article, record.timestamp_ms, record.partition)
        if assignment.record is not None:
            self._story_state.put(assignment.story_id, assignment.record.to_json_dict(), assignment.record.partition)
        match = build_match(article, hits, story_id=assignment.story_id, sources=assignment.sources,
                            watchlist_version=watchlist.version,
                            detected_at=detected_at_for(record.timestamp_ms))
        if verdict is dedup.Verdict.FIRST:
            seen = dedup.Seen(record.partition, record.offset, record.timestamp_ms)
            self._processed.put(article.id, seen.to_json_dict(), record.partition)
        report.matches.append(match)
        report.outcomes["matched"] += 1
        report.topics.update(hit.topic for hit in hits)

    def _dead_letter(self, record: InboundRecord, reason: str, now: datetime, report: BatchReport) -> None:
        log_event(log, logging.WARNING, "article_dead_lettered", partition=record.partition,
                  offset=record.offset, reason=reason)
        report.dead_letters.append((record.key, dead_letter_for(record, reason, now)))
        report.outcomes["dead_letter"] += 1

    def _purge(self, now_ms: int) -> None:
        if self._last_purge_ms is not None and now_ms - self._last_purge_ms < self._purge_every_ms:
            return
        self._last_purge_ms = now_ms
        entries = ((key, dedup.Seen.from_json_dict(value)) for key, value in self._processed.items())
        for key, seen in dedup.expired(entries, now_ms, self._retention_ms):
            self._processed.delete(key, seen.partition)
        for record in self.stories.expire(now_ms):
            self._story_state.delete(record.story_id, record.partition)
