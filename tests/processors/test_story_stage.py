"""The story stage on its own: candidates in, matches out, and only the state of partitions this
worker owns is ever loaded, written or purged (a standby copy or a revoked partition's leftovers
stay untouched)."""

from datetime import datetime, timezone

from newswatch.schemas import Match, decode
from processors.candidates import Candidate
from processors.records import InboundRecord, MemoryState
from processors.stories import Sketcher, StoryIndex
from processors.story_stage import StoryStage
from tests.processors.factories import article, hit
from tests.processors.test_stories import EDITS

NOW = datetime(2026, 2, 13, 10, 0, tzinfo=timezone.utc)
NOW_MS = int(NOW.timestamp() * 1000)
DAY_MS = 86_400_000
SKETCHER = Sketcher()


class RecordingState(MemoryState):
    """A MemoryState that remembers which partitions were written and deleted."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[tuple[str, str, int]] = []

    def put(self, key: str, value: dict, partition: int) -> None:
        self.writes.append(("put", key, partition))
        super().put(key, value, partition)

    def delete(self, key: str, partition: int) -> None:
        self.writes.append(("delete", key, partition))
        super().delete(key, partition)


def candidate_record(article_id: str, title: str, text: str, *, partition: int, offset: int,
                     article_offset: int | None = None, at_ms: int = NOW_MS) -> InboundRecord:
    art = article(article_id, title, text)
    candidate = Candidate(article=art, topics=(hit("air_defense_system"),), watchlist_version="v1",
                          article_partition=2, article_offset=offset if article_offset is None else article_offset,
                          appended_ms=at_ms, signature=SKETCHER.signature(art))
    return InboundRecord("t.candidates", partition, offset, at_ms, candidate.key(), candidate.encode())


def stage(owned: set[int], processed=None, stories=None) -> tuple[StoryStage, RecordingState, RecordingState]:
    processed, stories = processed or RecordingState(), stories or RecordingState()
    return StoryStage(stories=StoryIndex(SKETCHER), processed=processed, story_state=stories,
                      dedup_retention_ms=7 * DAY_MS, owns=lambda p: p in owned), processed, stories


def test_copies_get_one_story_and_a_replay_of_the_same_article_record_gives_the_same_bytes():
    story_stage, _, _ = stage({0})
    first = story_stage.process([candidate_record(f"c{n}", *EDITS[n], partition=0, offset=n) for n in range(3)], NOW)
    assert first.outcomes == {"matched": 3}
    assert len({m.story_id for m in first.matches}) == 1
    # Detection re-sent the candidate for article record (2, 1) after a crash: a new candidates offset.
    again = story_stage.process([candidate_record("c1", *EDITS[1], partition=0, offset=9, article_offset=1)], NOW)
    assert again.match_messages() == [first.match_messages()[1]]
    # The same article id from another article record is a second publication.
    dup = story_stage.process([candidate_record("c1", *EDITS[1], partition=0, offset=10, article_offset=77)], NOW)
    assert dup.outcomes == {"duplicate": 1} and not dup.matches
    assert [s.article_id for s in decode(first.match_messages()[2][1], Match).sources] == ["c0", "c1", "c2"]


def test_state_of_a_partition_not_owned_is_never_loaded_written_or_purged():
    # Partition 1's story and dedup entry sit in this worker's store (a standby copy, or leftovers
    # of a revoked partition); both are old enough to expire.
    old = NOW_MS - 10 * DAY_MS
    owner, processed, stories = stage({1})
    owner.process([candidate_record("theirs", *EDITS[0], partition=1, offset=0, at_ms=old)], NOW)
    assert {p for _, _, p in stories.writes} == {1}
    processed.writes.clear()
    stories.writes.clear()

    worker, _, _ = stage({0}, processed, stories)
    report = worker.process([candidate_record("ours", *EDITS[1], partition=0, offset=0),
                             candidate_record("late", *EDITS[2], partition=1, offset=1)], NOW)
    ours = report.matches[0]
    assert report.outcomes == {"matched": 1, "not_owned": 1}
    late = candidate_record("late", *EDITS[2], partition=1, offset=1)
    assert report.requeue == [(late.key, late.value)], "handed back to be sent to its partition's owner"
    assert [s.article_id for s in ours.sources] == ["ours"], "the unowned partition's story was not joined"
    writes = processed.writes + stories.writes
    assert writes and all(partition == 0 for _, _, partition in writes), writes
    assert not any(op == "delete" for op, _, _ in writes), "expired but not ours: not purged"
    assert "theirs" in processed.data and len(stories.data) == 2


def test_a_candidate_that_is_not_one_becomes_a_dead_letter():
    story_stage, _, _ = stage({0})
    bad = InboundRecord("t.candidates", 0, 5, NOW_MS, b"en", b'{"schema": "newswatch.article/v1"}')
    report = story_stage.process([bad], NOW)
    assert report.outcomes == {"dead_letter": 1}
    (_, letter), = report.dead_letters
    assert letter.topic == "t.candidates" and letter.offset == 5 and "expected a candidate record" in letter.error
