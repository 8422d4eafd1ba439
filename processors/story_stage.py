"""The story stage: Candidates in (from `<prefix>candidates`, whichever worker detected them),
Matches out. It alone sees every matched article of the whole stream, so copies of a story
that arrived on different articles partitions get one story id.

For each candidate, in order:
  1. decode it (a record that is not a Candidate v1 becomes a dead letter; none should be);
  2. ask the dedup memory whether this article id was matched before (dedup.judge, on where the
     *article* record was): a second publication is skipped; the same article record again is a
     replay (the story stage's own, or a detection worker's that re-sent it) and is matched again
     identically;
  3. put the article in a story (stories.StoryIndex, with the signature detection made);
  4. build the Match (match.build_match: the one place a Match is made).
State (dedup entries, open stories) lives in `KeyValueState`s backed by faust tables co-partitioned
with the candidates topic. `owns(partition)` says whether this worker holds that partition now:
state of any other partition is never loaded, written or purged here (a worker can still hold a
copy after a rebalance, or as a standby). A candidate of a partition this worker no longer owns is
handed back (`StoryReport.requeue`): the agent sends it to the candidates topic again, under its
key, so the partition's owner handles it. Skipping it alone could lose it: faust still acks it, and
a commit of that offset reaching the broker before the new owner reads its start offset would skip
it there too. A copy handled twice is judged a replay (dedup.judge goes by the article record): the
same story, and a Match again, which lists more sources if the story grew in between.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from newswatch.errors import SchemaError
from newswatch.logs import log_event
from newswatch.schemas import DeadLetter, Match, decode
from processors import dedup
from processors.candidates import Candidate
from processors.match import build_match, detected_at_for
from processors.records import InboundRecord, KeyValueState, dead_letter_for
from processors.stories import StoryIndex, StoryRecord

log = logging.getLogger("newswatch.processors")


def _everything(partition: int) -> bool:
    return True


@dataclass
class StoryReport:
    """What one batch of candidates produced: matches to send, dead letters, and counts."""

    matches: list[Match] = field(default_factory=list)
    dead_letters: list[tuple[bytes | None, DeadLetter]] = field(default_factory=list)
    outcomes: Counter = field(default_factory=Counter)  # matched, duplicate, dead_letter, not_owned
    requeue: list[tuple[bytes | None, bytes | None]] = field(default_factory=list)  # not owned: (key, value) to send again
    topics: Counter = field(default_factory=Counter)

    def match_messages(self) -> list[tuple[bytes, bytes]]:
        """(key, value) pairs for the matches topic: keyed by story id."""
        return [(m.story_id.encode(), m.encode()) for m in self.matches]


class StoryStage:
    """Dedup and story assignment over candidates; one instance per worker (it works only while
    the worker owns candidates partitions). Call `reset()` when partitions move."""

    def __init__(self, *, stories: StoryIndex, processed: KeyValueState, story_state: KeyValueState,
                 dedup_retention_ms: int, purge_every_ms: int = 60_000,
                 owns: Callable[[int], bool] = _everything):
        self.stories = stories
        self._processed = processed
        self._story_state = story_state
        self._retention_ms = dedup_retention_ms
        self._purge_every_ms = purge_every_ms
        self._owns = owns
        self._last_purge_ms: int | None = None
        # Retention and story windows run on stream time (the newest article timestamp seen), not
        # the wall clock: a backlog of week-old articles is still deduplicated among itself, and
        # a replay never forgets more than the first pass did.
        self.stream_time_ms: int | None = None
        self._stories_loaded = False

    def reset(self) -> None:
        """Rebuild the story index from the (recovered) state before the next batch."""
        self._stories_loaded = False

    def _ensure_stories(self) -> None:
        if not self._stories_loaded:
            owns = self._ownership()
            records = (StoryRecord.from_json_dict(key, value) for key, value in self._story_state.items())
            self.stories.load(record for record in records if owns(record.partition))
            self._stories_loaded = True

    def _ownership(self) -> Callable[[int], bool]:
        # Asked once per partition and batch (or purge): the stage runs without awaiting, so the
        # answer cannot change in between, and faust builds its whole assignment set per question.
        known: dict[int, bool] = {}

        def owns(partition: int) -> bool:
            if partition not in known:
                known[partition] = self._owns(partition)
            return known[partition]
        return owns

    def process(self, records: Sequence[InboundRecord], now: datetime) -> StoryReport:
        """Handle candidate records in order; `now` (the wall clock) stamps dead letters only."""
        report = StoryReport()
        decoded: list[tuple[int, InboundRecord, Candidate]] = []
        owns = self._ownership()
        for record in records:
            if not owns(record.partition):  # revoked since the batch was read: back to its owner
                report.outcomes["not_owned"] += 1
                report.requeue.append((record.key, record.value))
                continue
            try:
                decoded.append((record.partition, record, decode(record.value, Candidate)))
            except SchemaError as exc:
                log_event(log, logging.WARNING, "candidate_dead_lettered", partition=record.partition,
                          offset=record.offset, reason=exc.reason)
                report.dead_letters.append((record.key, dead_letter_for(record, exc.reason, now)))
                report.outcomes["dead_letter"] += 1
        self.process_candidates(decoded, report, now)
        return report

    def process_candidates(self, candidates: Sequence[tuple[int, InboundRecord, Candidate]], report: StoryReport,
                           now: datetime) -> None:
        """Handle decoded candidates into `report`. Each comes with the state partition it belongs
        to and the record it was read from (which a failure dead-letters)."""
        self._ensure_stories()
        for partition, record, candidate in candidates:
            if self.stream_time_ms is None or candidate.appended_ms > self.stream_time_ms:
                self.stream_time_ms = candidate.appended_ms
            try:
                self._process_one(partition, candidate, report)
            except Exception as exc:  # a bug on one candidate must not stop the stream behind it
                log.error("candidate_processing_failed", exc_info=True,
                          extra={"fields": {"article_id": candidate.article.id}})
                reason = f"processing failed: {type(exc).__name__}: {exc}"
                report.dead_letters.append((record.key, dead_letter_for(record, reason, now)))
                report.outcomes["dead_letter"] += 1
        if self.stream_time_ms is not None:
            self._purge(self.stream_time_ms)

    def _process_one(self, partition: int, candidate: Candidate, report: StoryReport) -> None:
        article = candidate.article
        previous = self._processed.get(article.id)
        verdict = dedup.judge(dedup.Seen.from_json_dict(previous) if previous else None,
                              candidate.article_partition, candidate.article_offset)
        if verdict is dedup.Verdict.DUPLICATE:
            report.outcomes["duplicate"] += 1
            return
        assignment = self.stories.assign(article, candidate.appended_ms, partition, signature=candidate.signature)
        if assignment.record is not None:
            self._story_state.put(assignment.story_id, assignment.record.to_json_dict(), assignment.record.partition)
        match = build_match(article, candidate.topics, story_id=assignment.story_id, sources=assignment.sources,
                            watchlist_version=candidate.watchlist_version,
                            detected_at=detected_at_for(candidate.appended_ms),
                            entities=candidate.entities, parties=candidate.parties)
        if verdict is dedup.Verdict.FIRST:
            seen = dedup.Seen(candidate.article_partition, candidate.article_offset, candidate.appended_ms,
                              state_partition=partition)
            self._processed.put(article.id, seen.to_json_dict(), partition)
        report.matches.append(match)
        report.outcomes["matched"] += 1
        report.topics.update(hit.topic for hit in candidate.topics)

    def _purge(self, now_ms: int) -> None:
        if self._last_purge_ms is not None and now_ms - self._last_purge_ms < self._purge_every_ms:
            return
        self._last_purge_ms = now_ms
        owns = self._ownership()
        entries = ((key, dedup.Seen.from_json_dict(value)) for key, value in self._processed.items())
        owned = ((key, seen) for key, seen in entries if owns(seen.state_partition))
        for key, seen in dedup.expired(owned, now_ms, self._retention_ms):
            self._processed.delete(key, seen.state_partition)
        for record in self.stories.expire(now_ms):  # the index holds owned stories only
            self._story_state.delete(record.story_id, record.partition)
