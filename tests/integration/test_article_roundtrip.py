"""An Article with Arabic and Russian text survives the real broker, kafka-python in, aiokafka out."""

from datetime import datetime, timezone

import pytest
from aiokafka import AIOKafkaConsumer
from kafka import KafkaProducer

from newswatch.schemas import Article, decode
from tests.support.kafka import create_topics

pytestmark = pytest.mark.integration


async def test_article_round_trip_keeps_every_field(kafka_bootstrap, topic_prefix):
    topic = f"{topic_prefix}articles"
    create_topics(kafka_bootstrap, topic)
    article = Article(
        id="ar-ru-1", url="https://example.test/news/1",
        title="شويغو: صفقة منظومات إس-400 لمصر", text="Лавров и Шойгу провели переговоры «2+2» в Москве.",
        summary="ملخص قصير", lang="ar",
        published_at=datetime(2026, 2, 13, 9, 0, tzinfo=timezone.utc),
        fetched_at=datetime(2026, 2, 13, 9, 0, 5, 250000, tzinfo=timezone.utc),
        feed={"url": "https://example.test/rss", "title": "Новости"}, source="RT Arabic",
        authors=("مراسلنا", "Иван Петров"), tags=("روسيا", "ПВО"))

    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    producer.send(topic, key=article.id.encode(), value=article.encode()).get(timeout=30)
    producer.close()

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    try:
        record = await consumer.getone()
    finally:
        await consumer.stop()
    assert record.key == b"ar-ru-1"
    assert "إس-400".encode() in record.value and b"\\u" not in record.value
    received = decode(record.value, Article)
    assert received == article
    assert received.model_dump() == article.model_dump()
