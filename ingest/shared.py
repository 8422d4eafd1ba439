"""Shared mode (`ingest.shared: true`): several `newswatch ingest` processes share the feeds, each
feed polled by exactly one live poller, with Kafka doing the sharing. No coordinator of our own:

  * `<prefix>feeds` (compacted): the feeds file, one record per host (key = host, value = that
    host's feeds). Every poller syncs its feeds file into it at start. All feeds of a host are in
    one record, so one partition, so one poller: the per-host limit stays exact.
  * The pollers are one consumer group (`<prefix>ingest`) on that topic; the group coordinator
    assigns its partitions. A poller polls the feeds of the partitions it holds.
  * `<prefix>feed-state` (compacted, same partitions; a host's records go to its feeds partition):
    what a poller knows of its feeds, written as it learns it, read by the next owner on assign:
      f:<feed url>    the feed's state (validators, schedule, health), after every poll;
      k:<entry key>   an entry key seen, with its article id (the seen-ids);
      o:<article id>  an article queued for the articles topic, with its payload; a tombstone
                      once the broker acknowledged the article.
    The o: and k: records of an article are acknowledged before the article is sent (the
    publisher's `before_send`). So a new owner finds every article the old one queued: those
    still pending it looks up on the articles topic (from shortly before they were queued) and
    sends only the ones not there. Nothing is lost, nothing sent twice, no feed polled early.

A poller that gives a partition up in a rebalance (another joined or left) first lets its polls
of those feeds end and their articles reach the broker (`handover_grace_s`), then the group moves
on. One that dies holds its partitions until `session_timeout_s`, then the others take them.

Pure parts first (partitioning, record encoding, folding a partition's records); the Kafka parts
(`sync_feeds`, `read_state`, `published_among`, `StateWriter`, `Membership`) after; the shared
store and the coordinator that the `ingest` command runs last.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import urlsplit

from kafka import AsyncConsumerRebalanceListener, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from kafka.errors import KafkaError, KafkaTimeoutError
from kafka.partitioner.default import murmur2

from newswatch.logs import log_event
from newswatch.topic_setup import METADATA_MAX_AGE_MS

from ingest.feeds_config import FeedConfig
from ingest.parse import ParsedEntry
from ingest.seen import FeedState, IngestStore

log = logging.getLogger("ingest.shared")
FORMAT = 1
# A pending article is looked for on the articles topic from this long before it was queued
# (producer clocks of one machine, or of machines kept in time by NTP).
LOOKBACK_S = 300.0


def feeds_topic(topics) -> str:
    return topics.name("feeds")


def state_topic(topics) -> str:
    return topics.name("feed-state")


def group_id(topics) -> str:
    return topics.name("ingest")


# --- pure: partitioning and records ----------------------------------------------------------

def host_of(url: str) -> str:
    """The host a feed or page URL belongs to, as FeedConfig.host spells it."""
    return (urlsplit(url).hostname or "").lower()


def partition_for(host: str, partitions: int) -> int:
    """The partition of a host in the feeds and feed-state topics: Kafka's default partitioner on
    the host as key (murmur2), so any client placing a record keyed by host agrees."""
    return (murmur2(host.encode("utf-8")) & 0x7FFFFFFF) % partitions


def _dumps(value) -> bytes:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")


def encode_feeds(feeds: Iterable[FeedConfig]) -> dict[str, bytes]:
    """The feeds topic's records for a feeds file: host -> value (canonical, so an unchanged host
    encodes to the same bytes and is not written again)."""
    by_host: dict[str, list[FeedConfig]] = {}
    for feed in feeds:
        by_host.setdefault(feed.host, []).append(feed)
    return {host: _dumps({"format": FORMAT, "feeds": [feed.model_dump(mode="json")
                                                      for feed in sorted(group, key=lambda f: f.url)]})
            for host, group in by_host.items()}


def decode_feeds(value: bytes) -> list[FeedConfig]:
    data = json.loads(value)
    return [FeedConfig.model_validate(feed) for feed in data["feeds"]]


def sync_plan(current: dict[str, bytes], wanted: dict[str, bytes]) -> dict[str, bytes | None]:
    """What to write so the feeds topic says `wanted`: changed or new hosts, and a tombstone
    (None) for each host no longer in the feeds file."""
    plan: dict[str, bytes | None] = {host: value for host, value in wanted.items() if current.get(host) != value}
    plan.update({host: None for host in current if host not in wanted})
    return plan


def _ts(value: datetime | None) -> float | None:
    return value.timestamp() if value else None


def _dt(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, tz=timezone.utc) if value is not None else None


def feed_state_record(state: FeedState) -> tuple[str, bytes]:
    return f"f:{state.url}", _dumps({
        "etag": state.etag, "last_modified": state.last_modified, "interval_s": state.interval_s,
        "next_poll_at": _ts(state.next_poll_at), "last_attempt_at": _ts(state.last_attempt_at),
        "last_success_at": _ts(state.last_success_at), "last_outcome": state.last_outcome,
        "consecutive_failures": state.consecutive_failures, "last_error": state.last_error,
        "articles_total": state.articles_total})


def seen_record(key: str, article_id: str, sighted: float) -> tuple[str, bytes]:
    return f"k:{key}", _dumps({"article_id": article_id, "sighted": sighted})


def outbox_record(article_id: str, feed_url: str, payload: bytes, queued: float,
                  keys: Sequence[str]) -> tuple[str, bytes]:
    """An article queued and not yet acknowledged. It carries the entry's keys, so that a new owner
    that finds this record but not the k: records after it (the old one died between) knows them."""
    return f"o:{article_id}", _dumps({"feed_url": feed_url, "payload": payload.decode("utf-8"), "queued": queued,
                                      "keys": list(keys)})


@dataclass(frozen=True)
class Pending:
    article_id: str
    feed_url: str
    payload: bytes
    queued: float
    keys: tuple[str, ...] = ()


@dataclass
class PartitionState:
    """What a feed-state partition says, folded from its records in order (latest wins)."""

    feeds: dict[str, FeedState] = field(default_factory=dict)
    seen: dict[str, tuple[str, float]] = field(default_factory=dict)  # key -> (article id, sighted)
    pending: dict[str, Pending] = field(default_factory=dict)  # article id -> what to publish

    def apply(self, key: str, value: bytes | None) -> None:
        kind, _, name = key.partition(":")
        if kind == "f":
            if value is None:
                self.feeds.pop(name, None)
                return
            data = json.loads(value)
            self.feeds[name] = FeedState(
                name, data["etag"], data["last_modified"], data["interval_s"], _dt(data["next_poll_at"]),
                _dt(data["last_attempt_at"]), _dt(data["last_success_at"]), data["last_outcome"],
                data["consecutive_failures"], data["last_error"], data["articles_total"])
        elif kind == "k":
            if value is None:
                self.seen.pop(name, None)
            else:
                data = json.loads(value)
                self.seen[name] = (data["article_id"], data["sighted"])
        elif kind == "o":
            if value is None:
                self.pending.pop(name, None)
            else:
                data = json.loads(value)
                self.pending[name] = Pending(name, data["feed_url"], data["payload"].encode("utf-8"), data["queued"],
                                             tuple(data["keys"]))


# --- Kafka: the feeds topic, reading a partition, finding published articles -----------------

def _reader(bootstrap: str, client_id: str) -> KafkaConsumer:
    return KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                         client_id=client_id, auto_offset_reset="earliest", request_timeout_ms=30_000,
                         bootstrap_timeout_ms=5_000, reconnect_backoff_max_ms=1_000)


def read_to_end(consumer: KafkaConsumer, partitions: Sequence[TopicPartition], deadline_s: float = 120.0,
                start: dict[TopicPartition, int] | None = None):
    """Every record of `partitions` from `start` (default: the beginning) to the end offsets as
    they are now, in order per partition."""
    consumer.assign(list(partitions))
    ends = consumer.end_offsets(list(partitions))
    for tp in partitions:
        if start and tp in start:
            consumer.seek(tp, start[tp])
        else:
            consumer.seek_to_beginning(tp)
    todo = {tp for tp in partitions if ends[tp] > (start or {}).get(tp, 0)}
    deadline = time.monotonic() + deadline_s
    while todo:
        for tp in list(todo):
            if consumer.position(tp) >= ends[tp]:
                todo.discard(tp)
        if not todo:
            break
        if time.monotonic() > deadline:
            raise KafkaTimeoutError(f"could not read {sorted(str(tp) for tp in todo)} to the end")
        for tp, records in consumer.poll(timeout_ms=500).items():
            for record in records:
                if record.offset < ends[tp]:
                    yield record


def sync_feeds(bootstrap: str, topic: str, feeds: Sequence[FeedConfig], partitions: int) -> int:
    """Make the feeds topic say what the feeds file says; returns how many hosts were written."""
    consumer = _reader(bootstrap, "newswatch-ingest-sync")
    try:
        current: dict[str, bytes] = {}
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        for record in read_to_end(consumer, tps):
            host = record.key.decode("utf-8")
            if record.value is None:
                current.pop(host, None)
            else:
                current[host] = record.value
    finally:
        consumer.close()
    plan = sync_plan(current, encode_feeds(feeds))
    if plan:
        producer = make_state_producer(bootstrap, "newswatch-ingest-sync")
        try:
            for host, value in plan.items():
                producer.send(topic, key=host.encode("utf-8"), value=value, partition=partition_for(host, partitions))
            producer.flush(60)
        finally:
            producer.close(5)
    return len(plan)


def read_state(bootstrap: str, topic: str, partitions: Iterable[int]) -> PartitionState:
    """Fold the feed-state records of `partitions` (all of them: `newswatch feeds`)."""
    consumer = _reader(bootstrap, "newswatch-ingest-state")
    state = PartitionState()
    try:
        for record in read_to_end(consumer, [TopicPartition(topic, p) for p in partitions]):
            state.apply(record.key.decode("utf-8"), record.value)
    finally:
        consumer.close()
    return state


def read_all_state(bootstrap: str, topic: str) -> PartitionState | None:
    """The whole feed-state topic folded (`newswatch feeds`); None when it does not exist yet."""
    consumer = _reader(bootstrap, "newswatch-feeds")
    try:
        parts = consumer.partitions_for_topic(topic)
    finally:
        consumer.close()
    return read_state(bootstrap, topic, sorted(parts)) if parts else None


def published_among(bootstrap: str, topic: str, article_ids: set[str], since_s: float) -> set[str]:
    """Which of `article_ids` are on the articles topic (keyed by article id), looking at the
    records written since `since_s` (epoch seconds)."""
    if not article_ids:
        return set()
    consumer = _reader(bootstrap, "newswatch-ingest-lookup")
    found: set[str] = set()
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        if not tps:
            return found
        offsets = consumer.offsets_for_times({tp: int(max(0.0, since_s) * 1000) for tp in tps})
        start = {tp: found_at.offset for tp, found_at in offsets.items() if found_at is not None}
        ends = consumer.end_offsets(tps)
        start.update({tp: ends[tp] for tp in tps if tp not in start})  # nothing written since
        for record in read_to_end(consumer, tps, start=start):
            key = record.key.decode("utf-8") if record.key else None
            if key in article_ids:
                found.add(key)
    finally:
        consumer.close()
    return found


def make_state_producer(bootstrap: str, client_id: str = "newswatch-ingest-state") -> KafkaProducer:
    return KafkaProducer(bootstrap_servers=bootstrap, client_id=client_id, acks="all", enable_idempotence=True,
                         max_in_flight_requests_per_connection=5, linger_ms=5, delivery_timeout_ms=300_000,
                         request_timeout_ms=30_000, max_block_ms=10_000, reconnect_backoff_max_ms=1_000,
                         bootstrap_timeout_ms=5_000)


class StateWriter:
    """Writes feed-state records, each to its host's partition. `flush()` (from a worker thread)
    returns once everything written so far is acknowledged; a record the producer gave up on is
    written again unless a newer record for its key was written meanwhile."""

    def __init__(self, producer: KafkaProducer, topic: str, partitions: int):
        self.producer = producer
        self.topic = topic
        self.partitions = partitions
        self._lock = threading.Lock()
        self._version: dict[str, int] = {}
        self._failed: list[tuple[str, int, bytes | None, int]] = []
        self._counter = 0

    def partition_of(self, url: str) -> int:
        return partition_for(host_of(url), self.partitions)

    def write(self, partition: int, key: str, value: bytes | None) -> None:
        with self._lock:
            self._counter += 1
            version = self._version[key] = self._counter
        self._send(partition, key, value, version)

    def _send(self, partition: int, key: str, value: bytes | None, version: int) -> None:
        future = self.producer.send(self.topic, key=key.encode("utf-8"), value=value, partition=partition)
        future.add_callback(lambda _meta: self._acked(key, version))
        future.add_errback(lambda exc: self._error(partition, key, value, version, exc))

    def _acked(self, key: str, version: int) -> None:
        with self._lock:
            if self._version.get(key) == version:
                del self._version[key]

    def _error(self, partition: int, key: str, value: bytes | None, version: int, exc) -> None:
        log_event(log, logging.WARNING, "state_write_failed", key=key[:80], reason=type(exc).__name__)
        with self._lock:
            self._failed.append((key, partition, value, version))

    def flush(self, timeout_s: float = 30.0) -> None:
        """Raises KafkaTimeoutError when the broker did not acknowledge everything in time."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self._lock:
                retry = [item for item in self._failed if self._version.get(item[0]) == item[3]]
                self._failed.clear()
            for key, partition, value, version in retry:
                self._send(partition, key, value, version)
            self.producer.flush(max(0.1, deadline - time.monotonic()))
            with self._lock:
                if not self._failed:
                    return
            if time.monotonic() > deadline:
                raise KafkaTimeoutError("the feed-state topic did not acknowledge in time")

    def close(self) -> None:
        self.producer.close(5)


# --- the shared store ---------------------------------------------------------------------

_SHARED_SCHEMA = """
CREATE TABLE IF NOT EXISTS key_partition (
    key TEXT PRIMARY KEY,
    part INTEGER NOT NULL,
    written REAL NOT NULL
) WITHOUT ROWID;
"""


class SharedStore(IngestStore):
    """The poller's store in shared mode: SQLite in memory, holding the partitions this process
    owns, every change also written to the feed-state topic. The poller and publisher use it as
    they use the state file."""

    def __init__(self, writer: StateWriter, retention_days: float):
        super().__init__(":memory:")
        self._db.executescript(_SHARED_SCHEMA)
        self.writer = writer
        # A seen key is written again when sighted this long after it was last written, so a new
        # owner does not prune a key that is still in a feed.
        self._refresh_s = retention_days * 86400 / 4

    def _write_feed(self, state: FeedState) -> None:
        self.writer.write(self.writer.partition_of(state.url), *feed_state_record(state))

    def save_feed(self, state: FeedState) -> None:
        super().save_feed(state)
        self._write_feed(state)

    def record_poll(self, state: FeedState, entries: Sequence[ParsedEntry], now: datetime,
                    hold: Callable[[ParsedEntry], bool] = lambda entry: False) -> list[ParsedEntry]:
        queued = super().record_poll(state, entries, now, hold)
        part = self.writer.partition_of(state.url)
        stamp = now.timestamp()
        for entry in queued:
            article = entry.article  # o: first: any prefix of these records is a consistent state
            self.writer.write(part, *outbox_record(article.id, state.url, article.encode(), stamp, entry.keys))
            for key in entry.keys:
                self.writer.write(part, *seen_record(key, article.id, stamp))
        with self._transaction():
            self._db.executemany("INSERT OR REPLACE INTO key_partition (key, part, written) VALUES (?,?,?)",
                                 [(key, part, stamp) for entry in queued for key in entry.keys])
            queued_ids = {entry.article.id for entry in queued}
            sighted = [key for entry in entries if entry.article.id not in queued_ids for key in entry.keys]
            stale = self._stale_keys(sighted, stamp - self._refresh_s)
            for key, article_id in stale:
                self.writer.write(part, *seen_record(key, article_id, stamp))
            self._db.executemany("UPDATE key_partition SET written=? WHERE key=?", [(stamp, key) for key, _ in stale])
        self._write_feed(self.feed_state(state.url))
        return queued

    def _stale_keys(self, keys: Sequence[str], before: float) -> list[tuple[str, str]]:
        stale = []
        for start in range(0, len(keys), 500):
            chunk = list(keys[start:start + 500])
            marks = ",".join("?" * len(chunk))
            stale.extend(self._db.execute(
                f"SELECT s.key, s.article_id FROM seen_keys s JOIN key_partition p ON p.key = s.key "
                f"WHERE s.key IN ({marks}) AND p.written < ?", [*chunk, before]).fetchall())
        return stale

    def release_page(self, article_id: str, payload: bytes | None = None) -> bool:
        released = super().release_page(article_id, payload)
        if released and payload is not None:
            row = self._db.execute("SELECT feed_url, queued_at FROM outbox WHERE article_id = ?",
                                   (article_id,)).fetchone()
            keys = [key for (key,) in self._db.execute("SELECT key FROM seen_keys WHERE article_id = ?", (article_id,))]
            if row:
                self.writer.write(self.writer.partition_of(row[0]),
                                  *outbox_record(article_id, row[0], payload, row[1], keys))
        return released

    def mark_published(self, article_ids: Sequence[str]) -> None:
        rows = []
        for start in range(0, len(article_ids), 500):
            chunk = list(article_ids[start:start + 500])
            rows.extend(self._db.execute(
                f"SELECT article_id, feed_url FROM outbox WHERE article_id IN ({','.join('?' * len(chunk))})",
                chunk).fetchall())
        super().mark_published(article_ids)
        for article_id, feed_url in rows:
            self.writer.write(self.writer.partition_of(feed_url), f"o:{article_id}", None)

    def prune(self, now: datetime, retention_days: float) -> int:
        cutoff = now.timestamp() - retention_days * 86400
        rows = self._db.execute(
            "SELECT s.key, p.part FROM seen_keys s JOIN key_partition p ON p.key = s.key "
            "WHERE s.state='published' AND s.last_sighted < ?", (cutoff,)).fetchall()
        removed = super().prune(now, retention_days)
        with self._transaction():
            for key, part in rows:
                self._db.execute("DELETE FROM key_partition WHERE key = ?", (key,))
                self.writer.write(part, f"k:{key}", None)
        return removed

    # --- partitions coming and going ---

    def load(self, part: int, state: PartitionState, published: set[str]) -> int:
        """Take on a partition read from the feed-state topic. Pending articles in `published`
        are on the articles topic already (their o: record gets its tombstone now); the others
        go to the outbox. Returns how many went to the outbox."""
        pending = sorted((p for p in state.pending.values() if p.article_id not in published),
                         key=lambda p: p.queued)
        with self._transaction():
            for feed_state in state.feeds.values():
                self._save_feed(feed_state)
            self._db.executemany(
                "INSERT OR REPLACE INTO seen_keys (key, article_id, state, last_sighted) VALUES (?,?,'published',?)",
                [(key, article_id, sighted) for key, (article_id, sighted) in state.seen.items()])
            self._db.executemany("INSERT OR REPLACE INTO key_partition (key, part, written) VALUES (?,?,?)",
                                 [(key, part, sighted) for key, (_, sighted) in state.seen.items()])
            for item in state.pending.values():
                self._db.executemany(
                    "INSERT OR REPLACE INTO seen_keys (key, article_id, state, last_sighted) VALUES (?,?,?,?)",
                    [(key, item.article_id, "published" if item.article_id in published else "pending", item.queued)
                     for key in item.keys])
                self._db.executemany("INSERT OR IGNORE INTO key_partition (key, part, written) VALUES (?,?,?)",
                                     [(key, part, item.queued) for key in item.keys])
            for item in pending:
                self._db.execute("INSERT OR IGNORE INTO outbox (article_id, feed_url, payload, queued_at) "
                                 "VALUES (?,?,?,?)", (item.article_id, item.feed_url, item.payload, item.queued))
        for item in state.pending.values():  # keys the old owner did not get to write
            for key in item.keys:
                if key not in state.seen:
                    self.writer.write(part, *seen_record(key, item.article_id, item.queued))
        for article_id in published & set(state.pending):
            self.writer.write(part, f"o:{article_id}", None)
        return len(pending)

    def waiting_for(self, urls: Iterable[str]) -> int:
        """Articles of these feeds not yet acknowledged (in the outbox or waiting for a page)."""
        urls = list(urls)
        if not urls:
            return 0
        marks = ",".join("?" * len(urls))
        return self._db.execute(f"SELECT (SELECT count(*) FROM outbox WHERE feed_url IN ({marks})) + "
                                f"(SELECT count(*) FROM page_wait WHERE feed_url IN ({marks}))",
                                [*urls, *urls]).fetchone()[0]

    def held_for(self, urls: Iterable[str]) -> list[str]:
        urls = list(urls)
        if not urls:
            return []
        marks = ",".join("?" * len(urls))
        return [row[0] for row in self._db.execute(
            f"SELECT article_id FROM page_wait WHERE feed_url IN ({marks})", urls)]

    def forget(self, part: int, urls: Iterable[str]) -> int:
        """Drop a partition given away: its feeds, its seen keys, and articles of its feeds not yet
        acknowledged (the new owner has them from the topic). Returns how many of those."""
        urls = list(urls)
        dropped = self.waiting_for(urls)
        with self._transaction():
            for url in urls:
                self._db.execute("DELETE FROM feeds WHERE url = ?", (url,))
                self._db.execute("DELETE FROM outbox WHERE feed_url = ?", (url,))
                self._db.execute("DELETE FROM page_wait WHERE feed_url = ?", (url,))
            self._db.execute("DELETE FROM seen_keys WHERE key IN (SELECT key FROM key_partition WHERE part = ?)",
                             (part,))
            self._db.execute("DELETE FROM key_partition WHERE part = ?", (part,))
        return dropped


# --- group membership (a thread) and the coordinator (asyncio) ------------------------------

class Membership(threading.Thread):
    """The pollers' consumer group on the feeds topic, in its own thread (kafka-python blocks).

    It reads its partitions from the start on every assignment (offsets are never committed),
    and calls into the event loop: `adopt(part, feeds, generation)` once a partition is read to
    its end and again when a host record in it changes; `revoke(parts, generation)` before the
    group moves partitions away, waiting for it to finish (so the next owner starts after us)."""

    def __init__(self, *, bootstrap: str, topic: str, group: str, session_timeout_s: float,
                 loop: asyncio.AbstractEventLoop, coordinator: "SharedIngest", revoke_timeout_s: float,
                 on_fatal: Callable[[BaseException], None]):
        super().__init__(name="ingest-membership", daemon=True)
        self.bootstrap = bootstrap
        self.topic = topic
        self.group = group
        self.session_timeout_ms = int(session_timeout_s * 1000)
        self.loop = loop
        self.coordinator = coordinator
        self.revoke_timeout_s = revoke_timeout_s
        self.on_fatal = on_fatal
        self.closing = threading.Event()
        self.consumer: KafkaConsumer | None = None
        self.generation = 0
        self._lock = threading.Lock()  # the listener runs on kafka-python's IO thread, the poll loop on ours
        self._hosts: dict[int, dict[str, list[FeedConfig]]] = {}
        self._loading: dict[int, int] | None = None  # partition -> end offset, until read to it
        self._assigned: set[int] = set()
        self._adopted: dict[int, list[FeedConfig]] = {}

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # noqa: BLE001 - polling without membership would poll twice
            log.exception("membership_failed")
            self.loop.call_soon_threadsafe(self.on_fatal, exc)

    def _run(self) -> None:
        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=self.group, client_id="newswatch-ingest-member",
            enable_auto_commit=False, auto_offset_reset="earliest", session_timeout_ms=self.session_timeout_ms,
            heartbeat_interval_ms=max(1000, self.session_timeout_ms // 5),
            max_poll_interval_ms=max(300_000, int(self.revoke_timeout_s * 2000)),
            metadata_max_age_ms=METADATA_MAX_AGE_MS, reconnect_backoff_max_ms=1_000, bootstrap_timeout_ms=10_000,
            # Round robin spreads the (few, hash-placed) partitions that hold hosts better than range.
            partition_assignment_strategy=(RoundRobinPartitionAssignor,))
        self.consumer = consumer
        consumer.subscribe([self.topic], listener=_Listener(self))
        try:
            while not self.closing.is_set():
                try:
                    batch = consumer.poll(timeout_ms=500)
                except KafkaError as exc:
                    log_event(log, logging.WARNING, "membership_poll_failed", reason=type(exc).__name__,
                              detail=str(exc)[:200])
                    time.sleep(1.0)
                    continue
                with self._lock:
                    self._take(batch)
                self._check_loaded(consumer)
        finally:
            consumer.close()  # hands our partitions over (the listener's revoke) and leaves the group

    def _take(self, batch) -> None:
        for tp, records in batch.items():
            if tp.partition not in self._assigned:
                continue
            hosts = self._hosts.setdefault(tp.partition, {})
            for record in records:
                host = record.key.decode("utf-8") if record.key else ""
                if record.value is None:
                    hosts.pop(host, None)
                    continue
                try:
                    hosts[host] = decode_feeds(record.value)
                except (ValueError, KeyError) as exc:
                    log_event(log, logging.ERROR, "feeds_record_unreadable", host=host, detail=str(exc)[:200])

    def _check_loaded(self, consumer: KafkaConsumer) -> None:
        """Adopt each assigned partition once it is read to its end offset, and again when its
        hosts change. The consumer calls block on the IO thread, so no lock is held during them."""
        with self._lock:
            generation, assigned = self.generation, set(self._assigned)
            loading = None if self._loading is None else dict(self._loading)
        if not assigned:
            return
        try:
            if loading is None:
                tps = [TopicPartition(self.topic, p) for p in assigned]
                loading = {tp.partition: end for tp, end in consumer.end_offsets(tps).items()}
            for part, end in list(loading.items()):
                if consumer.position(TopicPartition(self.topic, part)) >= end:
                    del loading[part]
        except (KafkaError, AssertionError, ValueError) as exc:  # a rebalance came in between: next round
            log_event(log, logging.DEBUG, "membership_check_skipped", reason=type(exc).__name__)
            return
        with self._lock:
            if generation != self.generation or assigned != self._assigned:
                return
            self._loading = loading
            for part in sorted(assigned - set(loading)):
                feeds = sorted((f for fs in self._hosts.get(part, {}).values() for f in fs), key=lambda f: f.url)
                if self._adopted.get(part) != feeds:
                    self._adopted[part] = feeds
                    asyncio.run_coroutine_threadsafe(self.coordinator.adopt(part, feeds, generation), self.loop)

    def revoked(self, parts: set[int]):
        """Forget `parts` and start the coordinator's revoke; returns its concurrent future."""
        with self._lock:
            self.generation += 1
            self.coordinator.announced = self.generation  # an adopt still reading its state gives up
            self._assigned -= parts
            for part in parts:
                self._hosts.pop(part, None)
                self._adopted.pop(part, None)
            generation = self.generation
        return asyncio.run_coroutine_threadsafe(self.coordinator.revoke(parts, generation), self.loop)

    def assigned(self, parts: set[int]) -> None:
        with self._lock:
            self._assigned = set(parts)
            self._loading = None
            for part in parts:
                self._hosts[part] = {}
                self._adopted.pop(part, None)
        # Read every assigned partition from its start (a kept one too: the host records are
        # forgotten on revoke). Offsets are never committed, so this is only the position.
        if parts:
            self.consumer.seek_to_beginning(*[TopicPartition(self.topic, part) for part in parts])
        log_event(log, logging.INFO, "partitions_assigned", partitions=sorted(parts), generation=self.generation)


class _Listener(AsyncConsumerRebalanceListener):
    """Runs on kafka-python's IO loop, which also sends the heartbeats: the revoke waits for the
    coordinator by sleeping on that loop (so heartbeats go on), never by blocking it."""

    def __init__(self, membership: Membership):
        self.membership = membership

    async def on_partitions_revoked(self, revoked):
        parts = {tp.partition for tp in revoked}
        if not parts:
            return
        future = self.membership.revoked(parts)
        deadline = time.monotonic() + self.membership.revoke_timeout_s
        # kafka-python 3.0's IO loop (pinned in pyproject) offers its sleep on the consumer's `_net`.
        net = self.membership.consumer._net
        while not future.done():
            if time.monotonic() > deadline:
                log_event(log, logging.ERROR, "handover_incomplete", partitions=sorted(parts))
                return
            await net.sleep(0.05)
        if future.exception() is not None:
            log_event(log, logging.ERROR, "handover_failed", partitions=sorted(parts),
                      reason=type(future.exception()).__name__, detail=str(future.exception())[:200])

    async def on_partitions_assigned(self, assigned):
        self.membership.assigned({tp.partition for tp in assigned})


class SharedIngest:
    """Runs in the event loop: loads a partition's state into the store and hands its feeds to the
    poller on adopt; on revoke lets the feeds' polls end, their articles reach the broker, then
    forgets them. One at a time (a lock); an adopt from before the latest revoke is ignored."""

    def __init__(self, *, poller, store: SharedStore, writer: StateWriter, bootstrap: str, state_topic: str,
                 articles_topic: str, grace_s: float, wake: Callable[[], None]):
        self.poller = poller
        self.store = store
        self.writer = writer
        self.bootstrap = bootstrap
        self.state_topic = state_topic
        self.articles_topic = articles_topic
        self.grace_s = grace_s
        self.wake = wake
        self.owned: dict[int, list[FeedConfig]] = {}
        self.closing = False  # set at shutdown: the publisher has stopped, nothing more will be acknowledged
        self.announced = 0  # the latest generation the membership thread has begun (set from that thread)
        self._generation = 0
        self._lock = asyncio.Lock()

    async def adopt(self, part: int, feeds: list[FeedConfig], generation: int) -> None:
        async with self._lock:
            if self.closing or generation != self._generation:
                return
            if part in self.owned:
                await self._release([part])
            delay = 1.0
            while True:  # the broker may be away for a while: the partition waits, unpolled, until it is read
                try:
                    state = await asyncio.to_thread(read_state, self.bootstrap, self.state_topic, [part])
                    since = min((p.queued for p in state.pending.values()), default=time.time()) - LOOKBACK_S
                    published = await asyncio.to_thread(published_among, self.bootstrap, self.articles_topic,
                                                        set(state.pending), since)
                    break
                except KafkaError as exc:
                    log_event(log, logging.WARNING, "partition_state_unreadable", partition=part,
                              reason=type(exc).__name__, detail=str(exc)[:200], retry_in_s=delay)
                if self.closing or generation != self.announced:
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
            if self.closing or generation != self.announced:
                return  # revoked while we read: the next owner has it
            requeued = self.store.load(part, state, published)
            self.poller.adopt(feeds)
            self.owned[part] = feeds
            if requeued:
                self.wake()
            log_event(log, logging.INFO, "partition_adopted", partition=part, feeds=len(feeds),
                      known=len(state.feeds), pending_found=len(published), pending_requeued=requeued)

    async def revoke(self, parts: set[int], generation: int) -> None:
        async with self._lock:
            self._generation = generation
            await self._release([part for part in parts if part in self.owned])

    async def _release(self, parts: Sequence[int]) -> None:
        if not parts:
            return
        started = time.monotonic()
        urls = [feed.url for part in parts for feed in self.owned[part]]
        await self.poller.release(urls, self.grace_s)
        for article_id in self.store.held_for(urls):  # go out with the feed's text
            self.store.release_page(article_id)
        self.wake()
        deadline = started + self.grace_s
        while not self.closing and self.store.waiting_for(urls) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        try:
            await asyncio.to_thread(self.writer.flush, max(1.0, deadline - time.monotonic()))
        except KafkaError as exc:
            log_event(log, logging.WARNING, "state_flush_incomplete", reason=type(exc).__name__)
        dropped = 0
        for part in parts:
            dropped += self.store.forget(part, [feed.url for feed in self.owned.pop(part)])
        log_event(log, logging.INFO, "partitions_released", partitions=sorted(parts), feeds=len(urls),
                  left_to_next_owner=dropped, seconds=round(time.monotonic() - started, 2))


# --- the stage -----------------------------------------------------------------------------

async def run_shared(config, settings, feeds: Sequence[FeedConfig], *, metrics, parser, extractor, client,
                     stop: asyncio.Event) -> int:
    """`newswatch ingest` in shared mode: sync the feeds file, join the pollers' group, poll what
    it assigns until `stop`. Returns how many articles this process published."""
    from newswatch.topic_setup import TopicSpec, ensure_topics

    from ingest.health import FEED_HEALTH_SUFFIX, FeedHealthPublisher, health_of, kafka_health_connector
    from ingest.poller import Poller
    from ingest.publish import OutboxPublisher, make_producer

    topics = config.kafka.topics
    bootstrap = config.kafka.bootstrap()
    names = {"feeds": feeds_topic(topics), "state": state_topic(topics), "articles": topics.articles}
    counts = await asyncio.to_thread(ensure_topics, bootstrap, [
        TopicSpec(names["feeds"], settings.feed_partitions, compacted=True),
        TopicSpec(names["state"], settings.feed_partitions, compacted=True),
        TopicSpec(names["articles"], config.kafka.partitions)], client_id="newswatch-ingest-admin")
    partitions = counts[names["feeds"]]
    if counts[names["state"]] != partitions:
        from ingest.cli import IngestError
        raise IngestError(f"topic {names['state']} has {counts[names['state']]} partitions and {names['feeds']} "
                          f"has {partitions}: they must match (a host's feeds and its state share a partition)")
    written = await asyncio.to_thread(sync_feeds, bootstrap, names["feeds"], feeds, partitions)
    log_event(log, logging.INFO, "ingest_started", mode="shared", feeds_in_file=len(feeds), hosts_written=written,
              topic=names["articles"], bootstrap=bootstrap, group=group_id(topics), partitions=partitions)
    writer = StateWriter(await asyncio.to_thread(make_state_producer, bootstrap), names["state"], partitions)
    store = SharedStore(writer, settings.seen_retention_days)
    publisher = OutboxPublisher(store, lambda: make_producer(bootstrap), names["articles"], metrics,
                                before_send=writer.flush)
    # Each poll's outcome also goes to <prefix>feed-health, as in single mode, for the console.
    health_topic = topics.name(FEED_HEALTH_SUFFIX)
    health = FeedHealthPublisher(kafka_health_connector(bootstrap, health_topic), health_topic)
    poller: Poller | None = None

    def report_health(report) -> None:
        state = poller.states.get(report.feed_url) if poller is not None else None
        feed = next((f for f in poller.feeds if f.url == report.feed_url), None) if poller is not None else None
        if state is not None and feed is not None:
            health.note(health_of(feed, state, datetime.now(timezone.utc)))

    poller = Poller([], client=client, store=store, parser=parser, metrics=metrics, settings=settings,
                    on_queued=publisher.wake, on_report=report_health, extractor=extractor)
    coordinator = SharedIngest(poller=poller, store=store, writer=writer, bootstrap=bootstrap,
                               state_topic=names["state"], articles_topic=names["articles"],
                               grace_s=settings.handover_grace_s, wake=publisher.wake)
    failure: list[BaseException] = []

    def fatal(exc: BaseException) -> None:
        failure.append(exc)
        stop.set()

    membership = Membership(bootstrap=bootstrap, topic=names["feeds"], group=group_id(topics),
                            session_timeout_s=settings.session_timeout_s, loop=asyncio.get_running_loop(),
                            coordinator=coordinator, revoke_timeout_s=settings.handover_grace_s + 10,
                            on_fatal=fatal)
    membership.start()
    polling, publishing = asyncio.Event(), asyncio.Event()

    async def wind_down() -> None:
        """On stop, the polls in progress finish (a cut-off poll would be repeated early by the
        next owner) and their articles get a moment to reach the broker before the publisher stops."""
        await stop.wait()
        await poller.release([feed.url for feed in poller.feeds], settings.handover_grace_s)
        polling.set()
        publisher.wake()
        deadline = time.monotonic() + min(5.0, settings.handover_grace_s)
        while store.pending_count() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        publishing.set()

    try:
        await asyncio.gather(poller.run(polling), publisher.run(publishing), health.run(publishing), wind_down())
    finally:
        polling.set()
        publishing.set()
        try:
            await asyncio.to_thread(writer.flush, 10)
        except KafkaError as exc:
            log_event(log, logging.WARNING, "state_flush_incomplete", reason=type(exc).__name__)
        coordinator.closing = True
        membership.closing.set()
        await asyncio.to_thread(membership.join, 30)
        writer.close()
        store.close()
    if failure:
        from ingest.cli import IngestError
        raise IngestError(f"lost the pollers' group on {bootstrap}: {failure[0]}")
    return publisher.published
