"""Making sure the topics a stage reads and writes exist before it subscribes, so the stages can
start in any order: whichever starts first creates the shared topics, with the configured partitions.

kafka-python admin, blocking: async callers run `ensure_topics` in a thread. Every stage calls it
(ingest before its producer, processors before the worker, alerts before its consumer).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from newswatch.errors import BrokerError

# Long enough for a broker that is still starting next to us (docker compose), short enough that a
# wrong address is reported promptly.
BOOTSTRAP_TIMEOUT_MS = 10_000
# A topic just created may not be described with its partitions at once.
DESCRIBE_TIMEOUT_S = 15.0
# How often a consumer refreshes topic metadata, so partitions added to a topic it reads are
# picked up within seconds (the clients' default is 5 minutes).
METADATA_MAX_AGE_MS = 10_000


@dataclass(frozen=True)
class TopicSpec:
    """A topic a stage needs: its name, the partitions to create it with, and whether it is compacted."""

    name: str
    partitions: int
    compacted: bool = False

    def new_topic(self) -> NewTopic:
        configs = {"cleanup.policy": "compact"} if self.compacted else {}
        # -1: the broker's default replication factor (1 on the local broker, more on a cluster).
        return NewTopic(self.name, self.partitions, -1, topic_configs=configs)


@contextlib.contextmanager
def quiet_kafka_logs():
    """kafka-python logs every refused connection attempt (about 20 lines before it gives up);
    while it bootstraps here, the one BrokerError that follows says it all."""
    kafka_log = logging.getLogger("kafka")
    previous = kafka_log.level
    kafka_log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        kafka_log.setLevel(previous)


def wait_reachable(bootstrap: str, timeout: float) -> None:
    """Return once a bootstrap server accepts a TCP connection; BrokerError, promptly, when none
    does within `timeout` seconds (before a Kafka client spends its own long timeouts on it)."""
    servers = [s.strip() for s in bootstrap.split(",") if s.strip()]
    deadline = time.monotonic() + timeout
    while True:
        for server in servers:
            host, _, port = server.rpartition(":")
            try:
                with socket.create_connection((host.strip("[]"), int(port)), timeout=min(2.0, timeout)):
                    return
            except (OSError, ValueError):
                continue
        if time.monotonic() >= deadline:
            raise BrokerError(f"no Kafka broker answers at {bootstrap} (tried for {timeout:.0f} s); is it running "
                              f"(`newswatch kafka status`), or is NEWSWATCH_KAFKA_BOOTSTRAP / "
                              f"kafka.bootstrap_servers wrong?")
        time.sleep(0.2)


def ensure_topics(bootstrap: str, specs: Iterable[TopicSpec], *, client_id: str = "newswatch-topic-setup",
                  bootstrap_timeout_ms: int = BOOTSTRAP_TIMEOUT_MS) -> dict[str, int]:
    """Create the topics of `specs` that are missing; return every one's partition count as it is on
    the broker (an existing topic keeps its own count). BrokerError when Kafka cannot be reached."""
    with quiet_kafka_logs():
        return _ensure_topics(bootstrap, list(specs), client_id, bootstrap_timeout_ms)


def _ensure_topics(bootstrap: str, specs: list[TopicSpec], client_id: str, bootstrap_timeout_ms: int) -> dict[str, int]:
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id=client_id, request_timeout_ms=15_000,
                                 bootstrap_timeout_ms=bootstrap_timeout_ms, reconnect_backoff_max_ms=1_000)
    except KafkaError as exc:
        raise BrokerError(f"cannot reach Kafka at {bootstrap}: {exc}; is the broker running "
                          f"(`newswatch kafka status`)?") from None
    try:
        existing = set(admin.list_topics())
        for topic in [spec.new_topic() for spec in specs if spec.name not in existing]:
            # One at a time: when another process creates the same topics at the same moment, the
            # broker refuses the whole request for the first topic that exists, and the listing may
            # not show that topic yet.
            try:
                admin.create_topics([topic])
            except TopicAlreadyExistsError:  # another stage created it first
                pass
        return _partition_counts(admin, [spec.name for spec in specs], bootstrap)
    except KafkaError as exc:
        raise BrokerError(f"cannot set up topics on {bootstrap}: {exc}") from None
    finally:
        admin.close()


def _partition_counts(admin: KafkaAdminClient, names: list[str], bootstrap: str) -> dict[str, int]:
    deadline = time.monotonic() + DESCRIBE_TIMEOUT_S
    while True:
        counts = {d["name"]: len(d["partitions"]) for d in admin.describe_topics(names)
                  if d.get("name") in names and d.get("partitions")}
        if len(counts) == len(names):
            return counts
        if time.monotonic() > deadline:
            absent = ", ".join(sorted(set(names) - set(counts)))
            raise BrokerError(f"topics {absent} have no partitions on {bootstrap}")
        time.sleep(0.2)
