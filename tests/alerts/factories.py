"""Builders for the records alerts tests need: Matches in three languages, a fake clock."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from newswatch.schemas import Evidence, FeedRef, Match, Source, TopicHit

T0 = datetime(2026, 11, 29, 6, 0, tzinfo=timezone.utc)

ARABIC_TITLE = "مصر تبحث شراء منظومة إس-400 الروسية للدفاع الجوي"
RUSSIAN_TITLE = "Индия получила третий полк С-400"
ENGLISH_TITLE = "Saudi Arabia and US hold 2+2 talks on THAAD deliveries"


def hit(topic: str = "s400", score: float = 0.9, severity: str = "high", term: str = "S-400",
        snippet: str | None = None, evidence: int = 1, title: str | None = None) -> TopicHit:
    snippet = snippet if snippet is not None else f"... talks on the {term} air-defence system ..."
    return TopicHit(topic=topic, title=title or topic.upper(), severity=severity, score=score, rule=f"{topic}-terms",
                    evidence=tuple(Evidence(term=term, field="text", start=10 * i, end=10 * i + len(term),
                                            snippet=snippet) for i in range(evidence)))


def match(story_id: str = "story-1", article_id: str = "a1", source: str = "Reuters", lang: str = "en",
          title: str = ENGLISH_TITLE, topics: tuple[TopicHit, ...] | None = None, summary: str = "",
          known_sources: tuple[str, ...] = (), at: datetime = T0) -> Match:
    """One Match; `known_sources` are other article ids of the story the processors already saw."""
    return Match(id=article_id, url=f"https://news.example/{article_id}", title=title, text="", summary=summary,
                 lang=lang, published_at=at, fetched_at=at, feed=FeedRef(url=f"https://feeds.example/{source}"),
                 source=source, story_id=story_id, topics=topics if topics is not None else (hit(),),
                 sources=tuple(Source(article_id=a, source=f"src-{a}") for a in known_sources),
                 watchlist_version="test-1", detected_at=at)


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime = T0):
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now
