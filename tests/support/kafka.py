"""Small conveniences over kafka-python for integration tests: create topics, read everything."""

from __future__ import annotations

import time

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError


def create_topics(bootstrap: str, *names: str, partitions: int = 1, compact: bool = False) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="tests-admin")
    try:
        configs = {"cleanup.policy": "compact"} if compact else {}
        admin.create_topics([NewTopic(name, partitions, 1, topic_configs=configs) for name in names])
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()


def read_records(bootstrap: str, topic: str, *, min_count: int, timeout: float = 60.0,
                 settle: float = 0.0) -> list:
    """Read `topic` from the start until at least `min_count` records arrived (deadline `timeout`).

    With `settle` > 0 it keeps reading that many seconds after reaching `min_count`, so a test
    can also assert that nothing *extra* (a duplicate) shows up.
    """
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                             auto_offset_reset="earliest", consumer_timeout_ms=200)
    try:
        deadline = time.monotonic() + timeout
        while not consumer.partitions_for_topic(topic):
            if time.monotonic() > deadline:
                raise AssertionError(f"topic {topic} never appeared")
            time.sleep(0.1)
        consumer.assign([TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)])
        consumer.seek_to_beginning()
        records: list = []
        reached_at = None
        while True:
            batch = consumer.poll(timeout_ms=200)
            for part in batch.values():
                records.extend(part)
            now = time.monotonic()
            if len(records) >= min_count and reached_at is None:
                reached_at = now
            if reached_at is not None and now - reached_at >= settle:
                return records
            if now > deadline:
                raise AssertionError(f"{topic}: got {len(records)} records, wanted at least {min_count} "
                                     f"within {timeout:.0f} s")
    finally:
        consumer.close()


def group_lag(bootstrap: str, group: str, topics: list[str]) -> dict:
    """Records of `topics` the consumer group `group` has not committed yet, per partition (a partition
    with records but no commit counts all of them)."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="tests-lag")
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        committed = {tp: meta.offset for tp, meta in admin.list_group_offsets({group: None}).get(group, {}).items()}
        tps = [TopicPartition(topic, p) for topic in topics for p in sorted(consumer.partitions_for_topic(topic) or ())]
        ends = consumer.end_offsets(tps)
        return {tp: ends[tp] - max(committed.get(tp, 0), 0) for tp in tps}
    finally:
        consumer.close()
        admin.close()


def group_members(bootstrap: str, group: str) -> int:
    """Members of a consumer group once it is stable (0 while it forms or rebalances)."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="tests-group")
    try:
        try:
            description = admin.describe_groups([group])[group]
        except KafkaError:  # no coordinator yet: the group is still forming
            return 0
        return len(description["members"]) if description.get("group_state") == "Stable" else 0
    finally:
        admin.close()
