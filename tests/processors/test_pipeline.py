"""The batch pipeline with a fake detector and dict state: dead letters, dedup, stories, replays."""

import json
from dataclasses import dataclass
from datetime import datetime, timezone

from newswatch.schemas import DeadLetter, Match, decode
from processors.pipeline import ArticleProcessor, InboundRecord, MemoryState
from processors.stories import Sketcher, StoryIndex
from tests.processors.factories import article, hit
from tests.processors.test_stories import EDITS, SAME_TOPIC_OTHER_STORY

NOW = datetime(2026, 2, 13, 10, 0, tzinfo=timezone.utc)
NOW_MS = int(NOW.timestamp() * 1000)
DAY_MS = 86_400_000


@dataclass
class FakeWatchlist:
    version: str
    terms: dict


def fake_detect(art, watchlist):
    """Stands in for processors.detection.detect: one hit per term found in the title or text."""
    return tuple(hit(topic, term) for term, topic in watchlist.terms.items() if term in art.title + art.text)


def record(value, offset, partition=0, ts=NOW_MS - 1000, key=b"k"):
    raw = value.encode() if hasattr(value, "encode") and not isinstance(value, (str, bytes)) else value
    if isinstance(raw, str):
        raw = raw.encode()
    return InboundRecord("t.articles", partition, offset, ts, key, raw)


def make_processor(state=None, **kwargs):
    state = state or {"processed": MemoryState(), "stories": MemoryState()}
    wl = {"current": FakeWatchlist("v1", {"S-400": "air-defence"})}
    processor = ArticleProcessor(detect=fake_detect, current_watchlist=lambda: wl["current"],
                                 stories=StoryIndex(Sketcher()), processed=state["processed"],
                                 story_state=state["stories"], dedup_retention_ms=7 * DAY_MS, **kwargs)
    return processor, state, wl


def test_garbage_and_unknown_versions_become_dead_letters_and_the_batch_goes_on():
    processor, _, _ = make_processor()
    v99 = json.loads(article("x", "S-400").encode())
    v99["schema"] = "newswatch.article/v99"
    report = processor.process([
        record(b"\xff\xfe not json", 0),
        record(json.dumps(v99), 1),
        record(article("good", *EDITS[0]), 2),
    ], NOW)
    assert report.outcomes == {"dead_letter": 2, "matched": 1}
    (key0, garbage), (_, future) = report.dead_letters
    assert key0 == b"k" and garbage.stage == "processors" and garbage.offset == 0
    assert garbage.error.startswith("not JSON") and garbage.value is None and garbage.value_base64
    assert "unsupported schema version 'newswatch.article/v99'" in future.error
    assert json.loads(future.value)["schema"] == "newswatch.article/v99" and future.time == NOW
    assert decode(future.encode(), DeadLetter) == future
    assert [m.id for m in report.matches] == ["good"]


def test_articles_without_topics_produce_nothing_and_are_not_remembered():
    processor, state, _ = make_processor()
    report = processor.process([record(article("calm", "Weather", "Sunny all week"), 0)], NOW)
    assert report.matches == [] and report.outcomes == {"no_topics": 1}
    assert state["processed"].data == {}


def test_second_publication_of_an_article_id_is_not_matched_again():
    processor, _, _ = make_processor()
    first = processor.process([record(article("a", *EDITS[0]), 0)], NOW)
    again = processor.process([record(article("a", *EDITS[0]), 7)], NOW)
    assert len(first.matches) == 1 and again.matches == [] and again.outcomes == {"duplicate": 1}


def test_replay_after_a_crash_reproduces_the_same_bytes():
    batch = [record(article(f"f{n}", *EDITS[n], source=f"Feed {n}"), n) for n in range(5)]
    batch.insert(2, record(article("other", *SAME_TOPIC_OTHER_STORY), 99))
    processor, state, _ = make_processor()
    first = processor.process(batch, NOW)
    # The worker restarts over the persisted state and the uncommitted batch is delivered again.
    restarted, _, _ = make_processor(state)
    again = restarted.process(batch, NOW)
    assert again.outcomes == first.outcomes == {"matched": 6}
    assert again.match_messages() == first.match_messages()


def test_one_story_for_five_feeds_and_another_for_an_unrelated_same_topic_article():
    processor, _, _ = make_processor()
    batch = [record(article(f"f{n}", *EDITS[n], source=f"Feed {n}"), n) for n in range(5)]
    batch.append(record(article("other", *SAME_TOPIC_OTHER_STORY), 5))
    report = processor.process(batch, NOW)
    keys = [key for key, _ in report.match_messages()]
    assert len(set(keys[:5])) == 1 and keys[5] != keys[0]
    last = decode(report.match_messages()[4][1], Match)
    assert [s.source for s in last.sources] == [f"Feed {n}" for n in range(5)]


def test_each_match_carries_the_watchlist_version_that_produced_it():
    processor, _, wl = make_processor()
    before = processor.process([record(article("a", "S-400 news"), 0)], NOW)
    wl["current"] = FakeWatchlist("v2", {"THAAD": "air-defence"})
    after = processor.process([record(article("b", "S-400 news"), 1), record(article("c", "THAAD news"), 2)], NOW)
    assert [m.watchlist_version for m in before.matches] == ["v1"]
    assert [(m.id, m.watchlist_version) for m in after.matches] == [("c", "v2")]


def test_detector_failure_is_dead_lettered_not_raised():
    def broken(art, wl):
        raise RuntimeError("boom")
    processor = ArticleProcessor(detect=broken, current_watchlist=lambda: FakeWatchlist("v", {}),
                                 stories=StoryIndex(Sketcher()), processed=MemoryState(),
                                 story_state=MemoryState(), dedup_retention_ms=DAY_MS)
    report = processor.process([record(article("a", "t"), 0)], NOW)
    assert report.dead_letters[0][1].error == "detector failed: RuntimeError: boom"


def test_dedup_entries_and_closed_stories_are_purged_by_stream_time():
    processor, state, _ = make_processor(purge_every_ms=0)
    # A backlog of old articles: the wall clock is far ahead, yet nothing is forgotten while the
    # records themselves are within the retention of each other.
    processor.process([record(article("old", *EDITS[0]), 0, ts=NOW_MS - 20 * DAY_MS),
                       record(article("old-again", *SAME_TOPIC_OTHER_STORY), 1, ts=NOW_MS - 19 * DAY_MS)], NOW)
    assert set(state["processed"].data) == {"old", "old-again"}
    again = processor.process([record(article("old", *EDITS[0]), 2, ts=NOW_MS - 19 * DAY_MS)], NOW)
    assert again.outcomes == {"duplicate": 1}
    # Stream time moves on by more than the 7-day retention (and the 3-day story window).
    processor.process([record(article("new", "S-400 fresh news"), 3, ts=NOW_MS - 12 * DAY_MS - 1)], NOW)
    assert set(state["processed"].data) == {"old-again", "new"}
    assert processor.stream_time_ms == NOW_MS - 12 * DAY_MS - 1
    assert len(state["stories"].data) == 1 and len(processor.stories) == 1


def test_an_unexpected_failure_on_one_record_dead_letters_it_and_the_batch_goes_on():
    processor, _, _ = make_processor()

    def broken_assign(article, at_ms, partition=0, signature=...):
        raise KeyError("index out of step")

    processor.stories.assign = broken_assign
    report = processor.process([record(article("a", "S-400 news"), 0), record(article("b", "quiet"), 1)], NOW)
    assert report.outcomes == {"dead_letter": 1, "no_topics": 1}
    assert report.dead_letters[0][1].error == "processing failed: KeyError: 'index out of step'"
