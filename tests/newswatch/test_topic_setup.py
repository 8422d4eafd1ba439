"""Stages creating the same topics at the same moment (processes started together) all succeed."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from newswatch.topic_setup import TopicSpec, ensure_topics

pytestmark = pytest.mark.integration


def test_concurrent_creation_of_the_same_topics_succeeds_everywhere(kafka_bootstrap, topic_prefix):
    specs = [TopicSpec(f"{topic_prefix}{n}", 1 + n % 3, compacted=n % 2 == 0) for n in range(8)]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: ensure_topics(kafka_bootstrap, specs), range(8)))
    assert results == [{spec.name: spec.partitions for spec in specs}] * 8
