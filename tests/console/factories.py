"""Match, delivery and feed-health records for the console tests, built with the real detector."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from console.store import Consumed, TopicKinds
from newswatch.kafka_settings import Topics
from newswatch.schemas import Article, FeedRef, Source
from processors.detection.engine import detect
from processors.detection.watchlist import load_watchlists
from processors.match import build_match

REPO = Path(__file__).resolve().parents[2]
WATCHLISTS = REPO / "seeds" / "watchlists"
SEED_TEXT = (REPO / "seeds" / "articles" / "rt-arabic-egypt-russia-2plus2.txt").read_text(encoding="utf-8")
SEED_TITLE = "وزيرا الخارجية والدفاع المصريان في موسكو لبحث صفقة أسلحة ومنظومات الدفاع الجوي"
RUSSIAN_S400 = ("Индия получила очередной полковой комплект S-400",
                "Российская сторона передала Индии очередной полковой комплект зенитных ракетных систем S-400 "
                "по контракту 2018 года, сообщили в министерстве обороны.")
HOSTILE_TITLE = ('<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2"> '
                 'Patriot batteries delivered to Poland')
BASE = datetime(2026, 12, 3, 12, 0, tzinfo=timezone.utc)
_watchlist = None


def watchlist():
    global _watchlist
    if _watchlist is None:
        _watchlist = load_watchlists(WATCHLISTS)
    return _watchlist


def article(article_id: str, title: str, text: str, lang: str, source: str = "RT Arabic",
            at: datetime = BASE) -> Article:
    return Article(id=article_id, url=f"https://news.example/{article_id}", title=title, text=text, lang=lang,
                   published_at=at, fetched_at=at, feed=FeedRef(url="https://news.example/feed.xml"), source=source)


def match_bytes(item: Article, story_id: str | None = None, at: datetime | None = None) -> bytes | None:
    hits = detect(item, watchlist())
    if not hits:
        return None
    story_id = story_id or f"st-{item.id}"
    source = Source(article_id=item.id, source=item.source, url=item.url, feed_url=item.feed.url,
                    published_at=item.published_at)
    return build_match(item, hits, story_id=story_id, sources=[source], watchlist_version=watchlist().version,
                       detected_at=at or item.fetched_at, entities=hits.entities, parties=hits.parties).encode()


def kinds(prefix: str = "newswatch.") -> TopicKinds:
    return TopicKinds.for_topics(Topics(prefix))


def consumed(topic: str, offset: int, value: bytes | None, key: bytes | None = None,
             at: datetime = BASE) -> Consumed:
    return Consumed(topic, 0, offset, int(at.timestamp() * 1000), key, value)


def feed_health(feed_id: str, name: str, *, failures: int, error: str | None, total: int = 3,
                at: datetime = BASE) -> bytes:
    from ingest.health import FeedHealth

    return FeedHealth(feed_id=feed_id, name=name, url=f"https://{name}.example/feed", last_attempt_at=at,
                      last_success_at=None if failures else at, last_outcome="error" if failures else "new",
                      consecutive_failures=failures, last_error=error, next_poll_at=at + timedelta(minutes=5),
                      articles_total=total, reported_at=at).encode()
