"""Building a Match v1 record from an article, the topics it raised and the story it belongs to.

Pure: every value that varies (story, sources, watchlist version, detection time) is passed in,
so the same inputs always give byte-identical records.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone

from newswatch.schemas import Article, Entity, Match, Parties, Source, TopicHit

_ARTICLE_FIELDS = tuple(name for name in Article.model_fields if name != "schema_")


def build_match(article: Article, hits: Sequence[TopicHit], *, story_id: str, sources: Sequence[Source],
                watchlist_version: str, detected_at: datetime, entities: Sequence[Entity] = (),
                parties: Parties | None = None) -> Match:
    """The Match for `article`; ValueError when `hits` is empty (no topic, no match). `entities`
    and `parties` are what detection found with the topics (none without a gazetteer)."""
    if not hits:
        raise ValueError(f"article {article.id!r} raised no topic; there is no match to build")
    fields = {name: getattr(article, name) for name in _ARTICLE_FIELDS}
    return Match(**fields, story_id=story_id, topics=tuple(hits), sources=tuple(sources),
                 watchlist_version=watchlist_version, detected_at=detected_at, entities=tuple(entities),
                 parties=parties)


def detected_at_for(record_timestamp_ms: int) -> datetime:
    """When an article counts as detected: the moment it was appended to the articles topic.

    Taken from the Kafka record rather than the wall clock so that re-processing the same record
    after a crash yields the same Match, byte for byte (processing delay is a metric instead).
    """
    return datetime.fromtimestamp(record_timestamp_ms / 1000, tz=timezone.utc)
