"""The processor's work without Kafka, in two stages that the worker runs as two faust agents:

  detection (DetectionStage; stateless, spread over the articles topic's partitions and workers):
    1. decode the record as Article v1; anything else becomes a DeadLetter with the reason;
    2. run the detector with the current watchlists; no topic, no match;
    3. sketch the title and lead (MinHash) and emit a Candidate (processors.candidates);
  story (processors.story_stage.StoryStage; one consumer of the candidates topic, with state):
    4. dedup, story assignment and the Match (match.build_match).
`ArticleProcessor` chains both in memory, for the backtest and the unit tests: the same rules, the
same Match bytes, without the candidates topic in between.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from newswatch.errors import SchemaError
from newswatch.logs import log_event
from newswatch.schemas import Article, DeadLetter, Match, TopicHit, decode
from processors.candidates import Candidate
from processors.records import STAGE, InboundRecord, KeyValueState, MemoryState, dead_letter_for
from processors.stories import Sketcher, StoryIndex
from processors.story_stage import StoryReport, StoryStage

__all__ = ["STAGE", "ArticleProcessor", "BatchReport", "DetectionReport", "DetectionStage", "EncodedDetection",
           "InboundRecord",
           "KeyValueState", "MemoryState", "dead_letter_for"]

log = logging.getLogger("newswatch.processors")

Detector = Callable[[Article, Any], Sequence[TopicHit]]


@dataclass
class DetectionReport:
    """What detection made of one batch of article records."""

    candidates: list[Candidate] = field(default_factory=list)
    dead_letters: list[tuple[bytes | None, DeadLetter]] = field(default_factory=list)
    outcomes: Counter = field(default_factory=Counter)  # candidate, no_topics, dead_letter

    def candidate_messages(self) -> list[tuple[bytes, bytes]]:
        """(key, value) pairs for the candidates topic: keyed by language."""
        return [(c.key(), c.encode()) for c in self.candidates]

    def encoded(self) -> "EncodedDetection":
        return EncodedDetection(candidates=self.candidate_messages(),
                                dead_letters=[(key, letter.encode()) for key, letter in self.dead_letters],
                                outcomes=self.outcomes)


@dataclass(frozen=True)
class EncodedDetection:
    """A DetectionReport as the records to send (cheap to hand from a detection process to the worker)."""

    candidates: list[tuple[bytes, bytes]]
    dead_letters: list[tuple[bytes | None, bytes]]
    outcomes: Counter


class DetectionStage:
    """Turns article records into candidates and dead letters. Pure and stateless: any worker
    may handle any articles partition. `detect(article, watchlist)` and `current_watchlist()` are
    passed in (the reloader can swap the watchlist between batches)."""

    def __init__(self, *, detect: Detector, current_watchlist: Callable[[], Any], sketcher: Sketcher):
        self._detect = detect
        self._current_watchlist = current_watchlist
        self._sketcher = sketcher

    def process(self, records: Sequence[InboundRecord], now: datetime) -> DetectionReport:
        """Handle `records` in order; `now` (the wall clock) stamps dead letters only."""
        report = DetectionReport()
        watchlist = self._current_watchlist()
        for record in records:
            try:
                self._process_one(record, watchlist, now, report)
            except Exception as exc:  # a bug on one record must not stop the stream behind it
                log.error("article_processing_failed", exc_info=True,
                          extra={"fields": {"partition": record.partition, "offset": record.offset}})
                self._dead_letter(record, f"processing failed: {type(exc).__name__}: {exc}", now, report)
        return report

    def _process_one(self, record: InboundRecord, watchlist: Any, now: datetime, report: DetectionReport) -> None:
        try:
            article = decode(record.value, Article)
        except SchemaError as exc:
            self._dead_letter(record, exc.reason, now, report)
            return
        try:
            detected = self._detect(article, watchlist)
            hits = tuple(detected)
        except Exception as exc:  # a detector bug must not stop the stream; the record is kept
            self._dead_letter(record, f"detector failed: {type(exc).__name__}: {exc}", now, report)
            return
        if not hits:
            report.outcomes["no_topics"] += 1
            return
        report.candidates.append(Candidate(
            article=article, topics=hits, watchlist_version=watchlist.version, article_partition=record.partition,
            article_offset=record.offset, appended_ms=record.timestamp_ms,
            signature=self._sketcher.signature(article),
            # A detector without a gazetteer (or a test's) returns a plain tuple: no entities.
            entities=getattr(detected, "entities", ()), parties=getattr(detected, "parties", None)))
        report.outcomes["candidate"] += 1

    def _dead_letter(self, record: InboundRecord, reason: str, now: datetime, report: DetectionReport) -> None:
        log_event(log, logging.WARNING, "article_dead_lettered", partition=record.partition,
                  offset=record.offset, reason=reason)
        report.dead_letters.append((record.key, dead_letter_for(record, reason, now)))
        report.outcomes["dead_letter"] += 1


@dataclass
class BatchReport:
    """What one batch produced through both stages: records to send, and counts."""

    matches: list[Match] = field(default_factory=list)
    dead_letters: list[tuple[bytes | None, DeadLetter]] = field(default_factory=list)
    outcomes: Counter = field(default_factory=Counter)  # matched, no_topics, duplicate, dead_letter
    topics: Counter = field(default_factory=Counter)

    def match_messages(self) -> list[tuple[bytes, bytes]]:
        """(key, value) pairs for the matches topic: keyed by story id."""
        return [(m.story_id.encode(), m.encode()) for m in self.matches]


class ArticleProcessor:
    """Both stages in one call, in memory: article records in, matches and dead letters out.

    `processed` holds dedup entries, `story_state` the open stories (all in state partition 0).
    """

    def __init__(self, *, detect: Detector, current_watchlist: Callable[[], Any], stories: StoryIndex,
                 processed: KeyValueState, story_state: KeyValueState, dedup_retention_ms: int,
                 purge_every_ms: int = 60_000):
        self.detection = DetectionStage(detect=detect, current_watchlist=current_watchlist,
                                        sketcher=stories.sketcher)
        self.story_stage = StoryStage(stories=stories, processed=processed, story_state=story_state,
                                      dedup_retention_ms=dedup_retention_ms, purge_every_ms=purge_every_ms)
        self.stories = stories

    @property
    def stream_time_ms(self) -> int | None:
        return self.story_stage.stream_time_ms

    def reset_stories(self) -> None:
        self.story_stage.reset()

    def process(self, records: Sequence[InboundRecord], now: datetime) -> BatchReport:
        detected = self.detection.process(records, now)
        story = StoryReport()
        # Each candidate with its article record, so a story-stage failure dead-letters the article.
        by_position = {(r.partition, r.offset): r for r in records}
        # One story state for the whole stream (partition 0), as on the candidates topic.
        self.story_stage.process_candidates(
            [(0, by_position[(c.article_partition, c.article_offset)], c) for c in detected.candidates], story, now)
        outcomes = Counter({k: v for k, v in detected.outcomes.items() if k != "candidate"})
        outcomes.update(story.outcomes)
        return BatchReport(matches=story.matches, dead_letters=detected.dead_letters + story.dead_letters,
                           outcomes=outcomes, topics=story.topics)
