from datetime import datetime, timezone

import pytest

from ingest.ids import article_id, canonical_link, dedupe_keys

FEED = "https://news.example.org/rss.xml"
WHEN = datetime(2026, 11, 28, 9, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("link, base, expected", [
    ("https://Example.ORG/a/b", None, "https://example.org/a/b"),
    ("http://example.org:80/a", None, "http://example.org/a"),
    ("https://example.org:443/a#comments", None, "https://example.org/a"),
    ("https://example.org:8443/a", None, "https://example.org:8443/a"),
    ("/news/1?utm_source=rss&id=7&fbclid=x", "https://example.org/feed", "https://example.org/news/1?id=7"),
    ("https://example.org", None, "https://example.org/"),
    ("  https://example.org/x  ", None, "https://example.org/x"),
    ("https://пример.рф/новости", None, "https://пример.рф/новости"),
    ("mailto:desk@example.org", None, None),
    ("javascript:alert(1)", None, None),
    ("", None, None),
    (None, None, None),
    ("http://[::1]:8080/x", None, "http://[::1]:8080/x"),
])
def test_canonical_link(link, base, expected):
    assert canonical_link(link, base) == expected


@pytest.mark.parametrize("guid, link, title, published, expected", [
    # a URN or tag guid is global: kept as is
    ("tag:example.org,2026:1", "https://example.org/1", "t", WHEN, "tag:example.org,2026:1"),
    ("urn:uuid:6f1c", None, "t", None, "urn:uuid:6f1c"),
    # a permalink guid is canonicalised like a link (same id as a link-only copy elsewhere)
    ("HTTPS://Example.org/a?utm_medium=rss", None, "t", None, "https://example.org/a"),
    # a bare guid is scoped by the feed's host
    ("12345", "https://example.org/1", "t", WHEN, "guid:news.example.org:12345"),
    ("  12345\n", None, None, None, "guid:news.example.org:12345"),
    # no guid: the canonical link, resolved against the feed URL
    (None, "/story/9?utm_campaign=x", "t", WHEN, "https://news.example.org/story/9"),
    ("", "https://example.org/x#top", "t", None, "https://example.org/x"),
])
def test_article_id_rules(guid, link, title, published, expected):
    assert article_id(guid=guid, link=link, title=title, published=published, feed_url=FEED) == expected


def test_article_id_falls_back_to_a_hash_of_title_and_published_time():
    first = article_id(guid=None, link=None, title="Визит министра", published=WHEN, feed_url=FEED)
    again = article_id(guid=None, link=None, title=" Визит министра ", published=WHEN, feed_url=FEED)
    other_time = article_id(guid=None, link=None, title="Визит министра", published=None, feed_url=FEED)
    other_title = article_id(guid=None, link=None, title="Визит", published=WHEN, feed_url=FEED)
    assert first.startswith("sha256:") and first == again
    assert len({first, other_time, other_title}) == 3


def test_very_long_guid_is_hashed_to_a_bounded_id():
    long_guid = "urn:x:" + "a" * 5000
    value = article_id(guid=long_guid, link=None, title=None, published=None, feed_url=FEED)
    assert value.startswith("sha256:") and len(value) < 100
    assert value == article_id(guid=long_guid, link=None, title="other", published=None, feed_url=FEED)


@pytest.mark.parametrize("aid, url, shared, expected", [
    ("tag:a", "https://example.org/x?utm_source=y", False, ("tag:a", "link:https://example.org/x")),
    ("tag:a", "https://example.org/", True, ("tag:a",)),  # every item points at the home page
    ("https://example.org/x", "https://example.org/x", False, ("https://example.org/x",)),
    ("tag:a", None, False, ("tag:a",)),
])
def test_dedupe_keys(aid, url, shared, expected):
    assert dedupe_keys(aid, url, shared) == expected
