"""Candidate v1: an article that raised a topic, on its way from detection (any worker, any
articles partition) to the story stage (one consumer of `<prefix>candidates`).

It carries everything the story stage needs, so that stage does no detection and no sketching:
the article, its topic hits and the watchlist version that produced them, where the article record
was on the articles topic (partition, offset: a crash replay is told from a second publication by
it) and when it was appended (the match's `detected_at` and the story stage's clock), and the
MinHash signature of its title and lead. Internal to the processors; keyed by language, so one
language's stories always share a partition even if the topic is ever given more than one.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import pydantic

from newswatch.schemas import Article, Entity, Parties, Record, TopicHit
from processors.stories import UNKNOWN_LANG

CANDIDATE_SCHEMA = "newswatch.candidate/v1"


class Candidate(Record):
    SCHEMA: ClassVar[str] = CANDIDATE_SCHEMA
    schema_: Literal["newswatch.candidate/v1"] = pydantic.Field(default=CANDIDATE_SCHEMA, alias="schema")
    article: Article
    topics: tuple[TopicHit, ...] = pydantic.Field(min_length=1)
    watchlist_version: str
    article_partition: int = pydantic.Field(ge=0)
    article_offset: int = pydantic.Field(ge=0)
    appended_ms: int  # the article record's Kafka timestamp
    signature: tuple[int, ...] | None = None  # None: the article has no words to compare
    entities: tuple[Entity, ...] = ()  # found by detection with the topics (gazetteer)
    parties: Parties | None = None

    def key(self) -> bytes:
        """The record key on the candidates topic: the story language."""
        return (self.article.lang or UNKNOWN_LANG).encode()
