"""Articles and topic hits for processor tests (texts written for these tests)."""

from __future__ import annotations

from datetime import datetime, timezone

from newswatch.schemas import Article, Evidence, TopicHit

FETCHED = datetime(2026, 2, 13, 9, 0, 5, tzinfo=timezone.utc)


def article(article_id: str, title: str, text: str = "", *, lang: str | None = "en", source: str = "Wire",
            feed: str = "https://feeds.example.test/a.xml", summary: str = "") -> Article:
    return Article(id=article_id, url=f"https://news.example.test/{article_id}", title=title, text=text,
                   summary=summary, lang=lang, published_at=FETCHED, fetched_at=FETCHED,
                   feed={"url": feed, "title": source}, source=source)


def hit(topic: str, term: str = "S-400", start: int = 0) -> TopicHit:
    return TopicHit(topic=topic, title=topic.replace("-", " ").title(), severity="high", score=1.0,
                    rule=f"{topic}:terms", evidence=(Evidence(term=term, field="title", start=start,
                                                              end=start + len(term), snippet=term),))
