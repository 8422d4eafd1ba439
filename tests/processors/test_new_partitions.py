"""A running worker notices partitions added to the articles topic: an article on a new partition
is matched without a restart (consumers refresh topic metadata every 10 s)."""

from __future__ import annotations

import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewPartitions

from newswatch.kafka_settings import Topics
from newswatch.schemas import Match, decode
from tests.processors.factories import article
from tests.processors.test_stories import EDITS, SAME_TOPIC_OTHER_STORY
from tests.processors.test_worker_integration import SEED_WATCHLISTS, worker_factory  # noqa: F401 (fixture)
from tests.processors.worker_support import write_config
from tests.support.kafka import create_topics, read_records

pytestmark = pytest.mark.integration


def test_an_article_on_a_partition_added_while_running_is_matched(tmp_path, kafka_bootstrap, topic_prefix,
                                                                   worker_factory):  # noqa: F811
    topics = Topics(topic_prefix)
    create_topics(kafka_bootstrap, topics.articles, partitions=1)
    worker_factory(write_config(tmp_path, topic_prefix, SEED_WATCHLISTS))
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    before = article("before", *EDITS[0])
    producer.send(topics.articles, key=before.id.encode(), value=before.encode(), partition=0).get(30)
    read_records(kafka_bootstrap, topics.matches, min_count=1, timeout=120)

    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, client_id="tests-new-partitions")
    try:
        admin.create_partitions({topics.articles: NewPartitions(total_count=2)})
    finally:
        admin.close()
    producer.close()
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)  # with the new partition in its metadata
    after = article("after", *SAME_TOPIC_OTHER_STORY)
    producer.send(topics.articles, key=after.id.encode(), value=after.encode(), partition=1).get(30)
    producer.close()
    # 10 s metadata refresh, then a rebalance; far below the clients' default of 5 minutes.
    records = read_records(kafka_bootstrap, topics.matches, min_count=2, timeout=90)
    assert sorted(decode(r.value, Match).id for r in records) == ["after", "before"]
