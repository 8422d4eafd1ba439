"""Fills the console's store from Kafka: matches, alert deliveries and dead letters, feed health.

No consumer group: the store keeps its own offsets (written with the rows), so the console never
shows up in, or holds back, any stage's group. A new (or deleted) store starts at the retention
horizon for matches and at the beginning of the compacted and DLQ topics. Topics that do not
exist yet are looked for again every few seconds; the console never creates a topic, so no stage
depends on it in any way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition

from console.store import Consumed, Store
from newswatch.logs import log_event

log = logging.getLogger("newswatch.console")
DISCOVER_EVERY_S = 3.0
PRUNE_EVERY_S = 600.0


class Feeder:
    def __init__(self, store: Store, bootstrap: str, retention_s: float,
                 on_change: Callable[[set[str]], None] = lambda stories: None,
                 clock_ms: Callable[[], int] = lambda: int(time.time() * 1000)):
        self.store = store
        self.bootstrap = bootstrap
        self.retention_ms = int(retention_s * 1000)
        self.on_change = on_change
        self.clock_ms = clock_ms
        self.consumed = 0
        self.connected = False
        self._assigned: set[TopicPartition] = set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                                        auto_offset_reset="earliest", client_id="newswatch-console",
                                        metadata_max_age_ms=5_000, fetch_max_wait_ms=100)
            try:
                await consumer.start()
                self.connected = True
                self._assigned = set()
                await self._consume(consumer, stop)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker is away: the pages keep serving what is stored
                log_event(log, logging.WARNING, "console_feed_error", error=type(exc).__name__, detail=str(exc)[:200])
                self.connected = False
                try:
                    await asyncio.wait_for(stop.wait(), timeout=2.0)
                except TimeoutError:
                    pass
            finally:
                self.connected = False
                await consumer.stop()

    async def _discover(self, consumer: AIOKafkaConsumer) -> None:
        # All topics' metadata, asked afresh: once partitions are assigned, the client's own
        # metadata follows only the assigned topics, and a topic created later would go unseen.
        cluster = await consumer._client.fetch_all_metadata()
        wanted: set[TopicPartition] = set()
        for topic in self.store.kinds.all:
            for partition in cluster.partitions_for_topic(topic) or ():
                wanted.add(TopicPartition(topic, partition))
        new = wanted - self._assigned
        if not new:
            return
        self._assigned = wanted
        consumer.assign(sorted(self._assigned))
        stored = self.store.offsets()
        horizon = self.clock_ms() - self.retention_ms
        unknown_matches = [tp for tp in new if (tp.topic, tp.partition) not in stored
                           and tp.topic == self.store.kinds.matches]
        by_time = await consumer.offsets_for_times({tp: horizon for tp in unknown_matches}) if unknown_matches else {}
        for tp in sorted(self._assigned):
            if (tp.topic, tp.partition) in stored:
                consumer.seek(tp, stored[(tp.topic, tp.partition)])
            elif tp in new:
                found = by_time.get(tp)
                if found is not None:
                    consumer.seek(tp, found.offset)
                elif tp.topic == self.store.kinds.matches and tp in by_time:
                    await consumer.seek_to_end(tp)  # nothing newer than the horizon
                else:
                    await consumer.seek_to_beginning(tp)

    async def _consume(self, consumer: AIOKafkaConsumer, stop: asyncio.Event) -> None:
        last_discover = 0.0
        last_prune = 0.0
        while not stop.is_set():
            now = time.monotonic()
            if now - last_discover >= DISCOVER_EVERY_S:
                await self._discover(consumer)
                last_discover = now
            if now - last_prune >= PRUNE_EVERY_S:
                await asyncio.to_thread(self.store.prune, self.clock_ms(), self.retention_ms)
                last_prune = now
            if not self._assigned:
                try:
                    await asyncio.wait_for(stop.wait(), timeout=0.5)
                except TimeoutError:
                    pass
                continue
            batches = await consumer.getmany(timeout_ms=200, max_records=2000)
            records = [Consumed(r.topic, r.partition, r.offset, r.timestamp, r.key, r.value)
                       for tp_records in batches.values() for r in tp_records]
            if not records:
                continue
            result = await asyncio.to_thread(self.store.apply, records, self.clock_ms())
            self.consumed += len(records)
            if result.stories or result.other:
                self.on_change(result.stories)
