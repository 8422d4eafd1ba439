"""Match building is pure: the same inputs give byte-identical records."""

from datetime import datetime, timezone

import pytest

from newswatch.schemas import Match, decode
from processors.match import build_match, detected_at_for
from processors.stories import source_of
from tests.processors.factories import article, hit


def test_match_carries_article_story_topics_sources_and_version():
    art = article("a1", "Lavrov and Shoigu hold 2+2 talks", "Text with S-400.", lang="en")
    detected = datetime(2026, 2, 13, 9, 0, 6, tzinfo=timezone.utc)
    match = build_match(art, [hit("air-defence"), hit("ministerial-visit", "2+2", 17)], story_id="st-1",
                        sources=[source_of(art)], watchlist_version="wl-abc", detected_at=detected)
    assert match.id == "a1" and match.title == art.title and match.feed == art.feed
    assert [t.topic for t in match.topics] == ["air-defence", "ministerial-visit"]
    assert match.sources[0].article_id == "a1" and match.sources[0].feed_url == art.feed.url
    assert (match.story_id, match.watchlist_version, match.detected_at) == ("st-1", "wl-abc", detected)
    assert decode(match.encode(), Match) == match


def test_same_inputs_give_the_same_bytes():
    art = article("a1", "t", "x")
    kwargs = dict(story_id="st-1", sources=[source_of(art)], watchlist_version="v", detected_at=detected_at_for(1))
    assert build_match(art, [hit("t")], **kwargs).encode() == build_match(art, [hit("t")], **kwargs).encode()


def test_no_hits_is_refused():
    with pytest.raises(ValueError, match="raised no topic"):
        build_match(article("a1", "t"), [], story_id="s", sources=[], watchlist_version="v",
                    detected_at=detected_at_for(0))


def test_detected_at_is_the_record_timestamp_in_utc():
    assert detected_at_for(1_770_973_205_250) == datetime(2026, 2, 13, 9, 0, 5, 250000, tzinfo=timezone.utc)


def test_entities_and_parties_from_detection_travel_in_the_match_and_older_records_still_decode():
    import json
    from pathlib import Path

    from processors.candidates import Candidate
    from processors.detection import detect, load_watchlists
    from processors.pipeline import DetectionStage
    from processors.records import InboundRecord
    from processors.stories import Sketcher

    watchlist = load_watchlists(Path(__file__).resolve().parents[2] / "seeds" / "watchlists")
    art = article("a1", "Russia delivered S-400 air defence systems to Turkey", "", lang="en")
    stage = DetectionStage(detect=detect, current_watchlist=lambda: watchlist, sketcher=Sketcher())
    record = InboundRecord(topic="articles", key=b"a1", value=art.encode(), partition=0, offset=0, timestamp_ms=1)
    report = stage.process([record], datetime(2026, 12, 1, tzinfo=timezone.utc))
    candidate = decode(report.candidate_messages()[0][1], Candidate)  # as the story stage reads it
    assert {e.id for e in candidate.entities} == {"RU", "TR", "S-400"}
    assert (candidate.parties.supplier, candidate.parties.recipient) == ("RU", "TR")
    match = build_match(art, candidate.topics, story_id="s", sources=[], watchlist_version="v",
                        detected_at=detected_at_for(1), entities=candidate.entities, parties=candidate.parties)
    assert decode(match.encode(), Match) == match
    old = json.loads(match.encode())
    del old["entities"], old["parties"]  # a v1 record written before entities existed
    assert decode(json.dumps(old), Match).entities == ()
