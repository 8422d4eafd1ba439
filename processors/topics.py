"""The Kafka topics the processor reads and writes, declared on a given faust App.

Every record is passed as raw bytes: the pipeline decodes articles itself, so a record faust
could not deserialize still reaches the dead-letter topic with its reason instead of being dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import faust

from newswatch.kafka_settings import Topics


@dataclass(frozen=True)
class ProcessorTopics:
    articles: faust.TopicT
    candidates: faust.TopicT
    matches: faust.TopicT
    articles_dlq: faust.TopicT


def _raw_topic(app: faust.App, name: str) -> faust.TopicT:
    return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
                     allow_empty=True)


def declare_topics(app: faust.App, names: Topics) -> ProcessorTopics:
    """The articles (input), candidates (detection -> story stage), matches (output) and articles
    DLQ topics under `names.prefix`."""
    return ProcessorTopics(articles=_raw_topic(app, names.articles), candidates=_raw_topic(app, names.candidates),
                           matches=_raw_topic(app, names.matches), articles_dlq=_raw_topic(app, names.articles_dlq))
