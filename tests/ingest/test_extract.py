"""Main-text extraction (ingest/extract.py) on the 30 pages of tests/data/pages: ar/en/ru stories
inside site boilerplate (menus, related links, share buttons, comments, cookie banners) that
names watchlist terms. The story must be kept (>= 95% of its sentences on every page) and the
boilerplate must raise no topic the story does not (<= 1 false topic over the whole set)."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from newswatch.schemas import Article, FeedRef

from ingest.extract import PageRefused, extract_page, looks_like_html
from ingest.parse import html_to_text
from processors.detection.engine import detect
from processors.detection.watchlist import load_watchlists
from tests.support.pages import LAYOUTS, pages

WATCHLISTS = Path(__file__).resolve().parents[2] / "seeds" / "watchlists"
_SENTENCE_END = re.compile(r"(?<=[.!?؟])\s+")
NOW = datetime(2026, 12, 1, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def watchlist():
    return load_watchlists(WATCHLISTS)


def _topics(watchlist, article: dict, text: str) -> set[str]:
    record = Article(id=article["id"], title=article["title"], text=text, lang=article["lang"], fetched_at=NOW,
                     feed=FeedRef(url="https://news.example.org/rss"))
    return {hit.topic for hit in detect(record, watchlist)}


def _kept(article: dict, text: str) -> tuple[int, int]:
    flat = " ".join(text.split())
    wanted = [s for p in article["paragraphs"] for s in _SENTENCE_END.split(p) if s.strip()]
    return sum(" ".join(s.split()) in flat for s in wanted), len(wanted)


def _false_topics(watchlist, extract) -> tuple[list[str], list[str]]:
    short, false = [], []
    for article, layout, html in pages():
        text = extract(html)
        kept, total = _kept(article, text)
        if kept < 0.95 * total:
            short.append(f"{article['id']} ({layout}): {kept}/{total}")
        story = _topics(watchlist, article, "\n".join(article["paragraphs"]))
        false += [f"{article['id']}: {topic}" for topic in _topics(watchlist, article, text) - story]
    return short, false


def test_the_page_set_covers_three_languages_and_every_layout():
    rows = pages()
    assert len(rows) >= 30
    for lang in ("ar", "en", "ru"):
        assert sum(article["lang"] == lang for article, _, _ in rows) >= 10
    assert {layout for _, layout, _ in rows} == set(LAYOUTS)


def test_extraction_keeps_the_story_and_drops_boilerplate_terms(watchlist):
    short, false = _false_topics(
        watchlist, lambda html: extract_page(html.encode(), "https://news.example.org/s", content_type="text/html").text)
    assert not short, f"pages that lost more than 5% of their story: {short}"
    assert len(false) <= 1, f"topics raised by boilerplate: {false}"


def test_without_extraction_the_boilerplate_would_raise_topics(watchlist):
    """The measure bites: the whole page's text, boilerplate included, raises false topics."""
    _, false = _false_topics(watchlist, html_to_text)
    assert len(false) >= 30, false


@pytest.mark.parametrize("content, content_type, reason", [
    (b"%PDF-1.7 binary", "application/pdf", "not_html"),
    (b'{"json": true}', "application/json", "not_html"),
    (b"<html><body><nav><a href='/'>Home</a></nav></body></html>", "text/html", "no_text"),
])
def test_what_is_not_an_article_page_is_refused_with_a_reason(content, content_type, reason):
    with pytest.raises(PageRefused) as refused:
        extract_page(content, "https://news.example.org/x", content_type=content_type)
    assert refused.value.reason == reason


def test_an_untyped_page_is_recognised_by_its_first_bytes():
    assert looks_like_html(b"  <!DOCTYPE html><html>", None)
    assert looks_like_html(b"<html><body>", "application/octet-stream")
    assert not looks_like_html(b"GIF89a", None)
