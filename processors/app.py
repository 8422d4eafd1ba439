"""The faust App for the processor stage, and nothing else (topics, tables and agents have their
own modules). `create_app(config, partitions)` builds one App per worker; there is no global App.
"""

from __future__ import annotations

import faust

from newswatch.config import AppConfig
from newswatch.topic_setup import METADATA_MAX_AGE_MS

APP_SUFFIX = "processor"


def broker_urls(bootstrap: str) -> str:
    """`host1:9092,host2:9092` -> faust's `kafka://host1:9092;kafka://host2:9092`."""
    return ";".join(f"kafka://{server.strip()}" for server in bootstrap.split(",") if server.strip())


def create_app(config: AppConfig, *, partitions: int, app_suffix: str = APP_SUFFIX) -> faust.App:
    """The App for `config`: consumer group and changelog topics named under the topic prefix.

    The table store is `memory://`: the state it keeps (matched article ids for the dedup window
    and the open stories) is small, and it is rebuilt from the compacted changelog topics at
    start-up; RocksDB would need a native module that is not among the project's dependencies.
    `partitions` is the articles topic's (the default for topics faust creates; tables set their own).
    """
    return faust.App(
        f"{config.kafka.topic_prefix}{app_suffix}",
        broker=broker_urls(config.kafka.bootstrap()),
        store="memory://",
        autodiscover=False,
        web_enabled=False,            # no HTTP port per worker; metrics have their own endpoint
        topic_partitions=partitions,
        consumer_auto_offset_reset="earliest",  # a new consumer group starts with the retained articles
        producer_acks=-1,
        producer_linger_ms=5,          # lets a batch's matches share produce requests
        producer_max_batch_size=512 * 1024,
        # Large fetches: faust waits for every refill of aiokafka's fetch buffer (measured stalls of
        # up to a second each with 1 MB fetches), so refill rarely. The cost is up to 16 MB of
        # prefetched articles per partition in memory. But hand them to the streams 500 at a time,
        # and queue at most two batches per stream: faust delivers a poll's records in full before
        # the next poll, so with a backlog of articles the candidates waited behind all of them and
        # the story stage sat idle until detection had finished (measured: no story batch at all
        # during a 20,000-article backlog), which cost the most when detection runs beside the loop.
        stream_buffer_maxsize=2 * config.process.batch_size,
        broker_max_poll_records=500,
        consumer_max_fetch_size=16 * 1024 * 1024,
        worker_redirect_stdouts=False,
        # Partitions added to the articles topic are noticed (and rebalanced) within seconds.
        consumer_metadata_max_age_ms=METADATA_MAX_AGE_MS,
        # faust's 60 s default keeps a crashed worker's partitions idle for a minute after a restart;
        # heartbeats run on the consumer's own thread, so slow batches do not trip a shorter one.
        broker_session_timeout=config.process.session_timeout.total_seconds(),
        broker_heartbeat_interval=min(3.0, config.process.session_timeout.total_seconds() / 3),
    )
