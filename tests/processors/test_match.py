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
