"""Before the worker starts: make sure the stage's topics exist and learn how many partitions the
articles topic has (the tables must be co-partitioned with it). kafka-python admin, once.
"""

from __future__ import annotations

import time

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from newswatch.errors import BrokerError
from newswatch.kafka_settings import Topics

# Long enough for a broker that is still starting next to us (docker compose), short enough that a
# wrong address is reported promptly.
BOOTSTRAP_TIMEOUT_MS = 10_000


def ensure_topics(bootstrap: str, names: Topics, partitions: int, *, replication: int = 1) -> int:
    """Create the articles, matches and articles DLQ topics when missing (with `partitions`
    partitions); return the articles topic's partition count as it is on the broker."""
    wanted = [names.articles, names.matches, names.articles_dlq]
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="newswatch-processor-setup",
                                 request_timeout_ms=15_000, bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS)
    except KafkaError as exc:
        raise BrokerError(f"cannot reach Kafka at {bootstrap}: {exc}; is the broker running "
                          f"(`newswatch kafka status`)?") from None
    try:
        missing = sorted(set(wanted) - set(admin.list_topics()))
        if missing:
            try:
                admin.create_topics([NewTopic(name, partitions, replication) for name in missing])
            except TopicAlreadyExistsError:  # another worker created them first
                pass
        deadline = time.monotonic() + 15
        while True:  # a topic just created may not be described with its partitions at once
            for description in admin.describe_topics([names.articles]):
                if description.get("name") == names.articles and description.get("partitions"):
                    return len(description["partitions"])
            if time.monotonic() > deadline:
                raise BrokerError(f"topic {names.articles} has no partitions on {bootstrap}")
            time.sleep(0.2)
    except KafkaError as exc:
        raise BrokerError(f"cannot set up topics on {bootstrap}: {exc}") from None
    finally:
        admin.close()
