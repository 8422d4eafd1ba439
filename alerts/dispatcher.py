"""The alerts process: Matches in from Kafka, signed webhooks out, every promise kept in Kafka.

Several processes share the work as one consumer group (`<prefix>alerts`) over two topics:

  router  `<prefix>matches` (any partition, stateless): decode, route (filters, silences), and send
          the Match to `<prefix>alerts.routed`, once per partition `subscription_partition(name)` of
          the subscriptions that want it (a RoutedMatch lists them, with the topics each keeps);
  owner   `<prefix>alerts.routed`: the process that owns partition p owns every subscription on p,
          with its state on partition p of the compacted `<prefix>alerts.state`: story states,
          throttle and digest, pending deliveries and the disabled flag. It observes routed matches,
          releases due stories into PendingDelivery records (written before any attempt) and hands
          due deliveries to the per-subscription DeliveryPool; each outcome is written back.

Ownership follows the group's assignment (eager rebalancing, so a partition has left its old owner
before a new one gets it). On revoke: stop starting attempts for the partition, let the ones in
flight finish, write their outcomes (acks=all), commit the offsets processed, forget the state. On
assign: read the partition's state to its end, and only then deliver. A process that dies is
replaced after the group's session timeout; the new owner reads what it wrote and delivers its
pending retries under the same webhook-id.

Offsets are committed only after the records they produced (routed matches, states) are acknowledged,
so a crash repeats work (the same webhook-id, a story observed twice) rather than losing it.
Every decision comes from the pure modules (route, noise, retry, payload); this module only moves
data between them, Kafka and HTTP.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from alerts import noise
from alerts.deliver import DeliveryPool, after_attempt, attempt, host_of
from alerts.metrics import AlertMetrics
from alerts.payload import build_digest, encode_body, encode_payload
from alerts.records import AlertDeadLetter, PendingDelivery, Route, RoutedMatch, subscription_partition
from alerts.route import route
from alerts.settings import AlertsSettings
from alerts.signing import delivery_id
from alerts.subscriptions import Endpoint, Silence, Subscription, SubscriptionsFile
from newswatch.errors import BrokerError, ConfigError, SchemaError
from newswatch.kafka_settings import Topics
from newswatch.logs import log_event
from newswatch.schemas import DeadLetter, Match, decode
from newswatch.topic_setup import METADATA_MAX_AGE_MS

log = logging.getLogger("newswatch.alerts")

STORY_RETENTION = timedelta(days=3)  # a story quiet this long is forgotten (a new article starts afresh)
MAX_TICK = 1.0
SILENCE_POLL = timedelta(seconds=2)
# A revoked partition waits this long beyond the attempt timeout for its attempts in flight.
REVOKE_GRACE = 5.0
# The group's liveness settings (aiokafka's defaults, stated): a member silent for SESSION_TIMEOUT_MS
# loses its partitions. An owner that the coordinator confirmed as a member of the current generation
# at time T keeps them at least until T + session timeout - heartbeat interval (its last heartbeat was
# at most one interval before), so attempts start only within a shorter lease after a confirmation:
# a process that stalled (paused, swapped out) re-confirms before it sends anything.
SESSION_TIMEOUT_MS = 10_000
HEARTBEAT_INTERVAL_MS = 3_000
MEMBERSHIP_LEASE = (SESSION_TIMEOUT_MS - 2 * HEARTBEAT_INTERVAL_MS) / 1000


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def state_topic(topics: Topics) -> str:
    return topics.name("alerts.state")


def routed_topic(topics: Topics) -> str:
    return topics.name("alerts.routed")


def url_fingerprint(endpoint: Endpoint) -> str:
    """Identifies a URL without revealing it (a 410 disables that URL, not the subscription name)."""
    return hashlib.sha256(endpoint.url.reveal().encode("utf-8")).hexdigest()[:16]


def ensure_topics(bootstrap: str, topics: Topics) -> int:
    """Create the topics the stage uses when missing (blocking; run in a thread) and return the partition
    count of the state topic, which the routed topic must share (BrokerError when it does not)."""
    from newswatch.topic_setup import TopicSpec, ensure_topics as ensure_shared_topics

    # Before subscribing: a consumer that subscribes to a missing topic hears of it only at its next
    # metadata refresh, whichever stage creates it meanwhile. An existing state topic keeps its count
    # (one partition for a deployment from before the stage scaled out), and the routed topic follows it.
    client = "newswatch-alerts-admin"
    counts = ensure_shared_topics(bootstrap, [TopicSpec(topics.matches, topics.partitions),
                                              TopicSpec(state_topic(topics), topics.partitions, compacted=True),
                                              TopicSpec(topics.alerts_dlq, 1), TopicSpec(topics.articles_dlq, 1)],
                                  client_id=client)
    partitions = counts[state_topic(topics)]
    routed = ensure_shared_topics(bootstrap, [TopicSpec(routed_topic(topics), partitions)], client_id=client)
    if routed[routed_topic(topics)] != partitions:
        raise BrokerError(f"{routed_topic(topics)} has {routed[routed_topic(topics)]} partitions but "
                          f"{state_topic(topics)} has {partitions}: they must be equal (a subscription's routed "
                          f"matches and its state share a partition number); stop every alerts process and "
                          f"recreate {routed_topic(topics)} with {partitions} partitions")
    return partitions


class _Listener(ConsumerRebalanceListener):
    def __init__(self, dispatcher: "Dispatcher", consumer: AIOKafkaConsumer):
        self.dispatcher, self.consumer = dispatcher, consumer

    async def on_partitions_revoked(self, revoked):
        await self.dispatcher._on_revoked(self.consumer, set(revoked))

    async def on_partitions_assigned(self, assigned):
        await self.dispatcher._on_assigned(self.consumer, set(assigned))


async def wait_woken(wake: asyncio.Event, seconds: float) -> None:
    """Wait until `wake` is set or `seconds` pass; a cancellation always propagates.

    Not asyncio.wait_for: on Python 3.11 it returns normally when it is cancelled just as the
    event is set, and a `while True` loop around it then outlives its cancellation (seen: the
    dispatcher still stopping 45 s after its stop on a busy machine)."""
    try:
        async with asyncio.timeout(seconds):
            await wake.wait()
    except TimeoutError:
        pass


class Dispatcher:
    """Runs the alerts stage against one broker and one set of subscriptions (one member of the group).

    `client_factory()` makes an httpx client; each subscription gets its own, so its connection
    pool (and keep-alive connections) is never shared with, or starved by, another receiver.
    """

    def __init__(self, *, settings: AlertsSettings, subscriptions: SubscriptionsFile,
                 endpoints: dict[str, Endpoint], topics: Topics, bootstrap: str,
                 client_factory: Callable[[], httpx.AsyncClient],
                 metrics: AlertMetrics, clock: Callable[[], datetime] = utc_now,
                 random_unit: Callable[[], float] = random.random,
                 poll_silences: Callable[[], tuple[Silence, ...] | None] | None = None):
        self.settings = settings
        self.subscriptions = {s.name: s for s in subscriptions.subscriptions}
        self.silences = subscriptions.silences
        self.poll_silences = poll_silences  # returns new silences when they changed (None: unchanged)
        self._silences_checked = datetime.min.replace(tzinfo=timezone.utc)
        self.endpoints = endpoints
        self.topics = topics
        self.bootstrap = bootstrap
        self.client_factory = client_factory
        self._clients: dict[str, httpx.AsyncClient] = {}
        self.metrics = metrics
        self.clock = clock
        self.random_unit = random_unit
        self.group_id = settings.consumer_group or f"{topics.prefix}alerts"
        self.partitions = 1  # of the state and routed topics; set from the broker at start
        # State of the subscriptions on the partitions this process owns (and nothing else).
        self.stories: dict[tuple[str, str], noise.StoryState] = {}
        # Stories with an alert due (a dict as an insertion-ordered set), so ticks skip the rest.
        self._due: dict[tuple[str, str], None] = {}
        self.throttles: dict[str, noise.ThrottleState] = {}
        self.pending: dict[str, PendingDelivery] = {}
        self.disabled: dict[str, dict] = {}
        self.in_flight: dict[str, str] = {}  # webhook-id -> subscription, from submit to its outcome written
        # Routed partitions owned now, with their state loaded: only these are observed and delivered.
        self.owned: set[int] = set()
        self._assigned: set[TopicPartition] = set()
        self._processed: dict[TopicPartition, int] = {}  # next offset to commit, per partition handled
        self._committed: dict[TopicPartition, int] = {}  # offsets this process committed (re-committed to check membership)
        self._lease_until = 0.0  # time.monotonic() up to which attempts may start without a membership check
        self._fatal: BaseException | None = None  # an error inside a rebalance callback (aiokafka logs and drops those)
        self.ready = asyncio.Event()
        self._wake = asyncio.Event()
        self._unflushed: list[tuple[str, int, bytes, bytes | None]] = []
        self._unacked: list[asyncio.Future] = []
        self._flush_lock = asyncio.Lock()
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._pool: DeliveryPool | None = None
        self._last_sweep = datetime.min.replace(tzinfo=timezone.utc)

    # --- lifecycle ------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set; pending work stays in Kafka for the next owner."""
        self.partitions = await asyncio.to_thread(ensure_topics, self.bootstrap, self.topics)
        # State records are a few kB each and one partition takes one batch in flight at a time:
        # with the 16 kB default a burst of 500 alerts needed ~100 sequential round trips.
        self._producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True,
                                          max_batch_size=512 * 1024, client_id="newswatch-alerts")
        await self._producer.start()
        consumer = None
        try:
            await self._count_dead_letters()
            self._pool = DeliveryPool(self._deliver, self.settings.per_host_concurrency,
                                      lambda name: host_of(self.endpoints[name].url.reveal()))
            consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=self.group_id,
                                        enable_auto_commit=False, auto_offset_reset="earliest",
                                        client_id="newswatch-alerts", session_timeout_ms=SESSION_TIMEOUT_MS,
                                        heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS,
                                        metadata_max_age_ms=METADATA_MAX_AGE_MS)  # notices added partitions
            consumer.subscribe([self.topics.matches, routed_topic(self.topics)], listener=_Listener(self, consumer))
            await consumer.start()
            self._consumer = consumer
            self.ready.set()
            tasks = [asyncio.create_task(self._tick_loop(), name="tick"),
                     asyncio.create_task(self._consume_from(consumer), name="consume")]
            stopper = asyncio.create_task(stop.wait())
            try:
                done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task is not stopper:
                        task.result()  # a crashed loop is an error, not a silent stop
            finally:
                log_event(log, logging.INFO, "alerts_stopping", in_flight=len(self.in_flight))
                for task in (*tasks, stopper):
                    task.cancel()
                await asyncio.gather(*tasks, stopper, return_exceptions=True)
                log_event(log, logging.DEBUG, "alerts_loops_stopped")
                # Hand everything on: finish the attempts in progress, write their outcomes, commit.
                self.owned.clear()
                await self._pool.close(grace=self.settings.timeout + 1)
                log_event(log, logging.DEBUG, "alerts_workers_stopped")
                await self._settle(consumer, set(self._assigned))
        finally:
            for result in await asyncio.gather(*self._unacked, return_exceptions=True):
                if isinstance(result, Exception):
                    log_event(log, logging.ERROR, "state_write_failed", error=type(result).__name__)
            if consumer is not None:
                await consumer.stop()  # leaves the group: the partitions move on at once
            await self._producer.stop()
            await asyncio.gather(*(client.aclose() for client in self._clients.values()), return_exceptions=True)

    async def _count_dead_letters(self) -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                                    client_id="newswatch-alerts-restore")
        await consumer.start()
        try:
            dlq_tp = TopicPartition(self.topics.alerts_dlq, 0)
            ends, starts = await consumer.end_offsets([dlq_tp]), await consumer.beginning_offsets([dlq_tp])
            self.metrics.dlq_records.set(ends[dlq_tp] - starts[dlq_tp])
        finally:
            await consumer.stop()

    # --- ownership --------------------------------------------------------------------------

    def partition_of(self, subscription: str) -> int:
        return subscription_partition(subscription, self.partitions)

    def owns(self, subscription: str) -> bool:
        return self.partition_of(subscription) in self.owned

    async def _on_revoked(self, consumer: AIOKafkaConsumer, revoked: set[TopicPartition]) -> None:
        """Before the group rebalances: nothing more for these partitions, and everything said about them
        is in Kafka before the next owner (which gets them only after this returns) reads it."""
        try:
            parts = {tp.partition for tp in revoked if tp.topic == routed_topic(self.topics)}
            self.owned -= parts  # first: from here on no attempt starts for them
            self._assigned -= revoked
            deadline = asyncio.get_running_loop().time() + self.settings.timeout + REVOKE_GRACE
            while self._in_flight_on(parts) and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.05)
            if self._in_flight_on(parts):
                log_event(log, logging.WARNING, "alerts_revoked_with_attempts_in_flight",
                          partitions=_names(parts), in_flight=len(self._in_flight_on(parts)))
            await self._settle(consumer, revoked)
            self._forget(parts)
            for tp in revoked:  # a later owner commits further: never re-commit these offsets
                self._processed.pop(tp, None)
                self._committed.pop(tp, None)
            self._lease_until = 0.0
            if parts:
                log_event(log, logging.INFO, "alerts_partitions_revoked", partitions=_names(parts))
        except BaseException as exc:  # aiokafka would only log it
            self._fatal = exc
            raise

    async def _on_assigned(self, consumer: AIOKafkaConsumer, assigned: set[TopicPartition]) -> None:
        """After the rebalance: read the state of the newly owned partitions to its end, then own them."""
        try:
            self._assigned = set(assigned)
            self._processed = {tp: offset for tp, offset in self._processed.items() if tp in assigned}
            parts = {tp.partition for tp in assigned if tp.topic == routed_topic(self.topics)} - self.owned
            if parts:
                await self._load(parts)
                self.owned |= parts
            self._wake.set()
        except BaseException as exc:
            self._fatal = exc
            raise

    def _leased(self) -> bool:
        return time.monotonic() < self._lease_until

    async def _confirm_membership(self) -> bool:
        """True when attempts may start: the lease is current, or the coordinator accepts a commit (of
        offsets already committed, so nothing moves) from this member in the current generation."""
        if self._leased():
            return True
        consumer = self._consumer
        if consumer is None:
            return False
        offsets = {tp: offset for tp, offset in self._committed.items() if tp in self._assigned}
        if not offsets:
            for tp in sorted(self._assigned):
                committed = await consumer.committed(tp)
                if committed is not None:
                    offsets = {tp: committed}
                    break
        started = time.monotonic()
        if not offsets:  # nothing committed on any partition held: the rebalance protocol alone decides
            self._lease_until = started + MEMBERSHIP_LEASE
            return True
        try:
            await consumer.commit(offsets)
        except KafkaError as exc:  # out of the group or rebalancing: the rebalance decides who owns what
            log_event(log, logging.WARNING, "alerts_membership_unconfirmed", error=type(exc).__name__)
            return False
        self._lease_until = started + MEMBERSHIP_LEASE
        return True

    def _in_flight_on(self, parts: set[int]) -> set[str]:
        return {i for i, name in self.in_flight.items() if self.partition_of(name) in parts}

    async def _settle(self, consumer: AIOKafkaConsumer, tps: set[TopicPartition]) -> None:
        """Write every queued record (acknowledged), then commit what was processed of `tps`."""
        await self._flush()
        for result in await asyncio.gather(*self._unacked, return_exceptions=True):
            if isinstance(result, Exception):
                log_event(log, logging.ERROR, "state_write_failed", error=type(result).__name__)
        self._unacked = []
        offsets = {tp: offset for tp, offset in self._processed.items() if tp in tps}
        if offsets:
            try:
                await consumer.commit(offsets)
                self._committed.update(offsets)
            except KafkaError as exc:  # the next owner repeats those records: same outcome, same webhook-ids
                log_event(log, logging.WARNING, "alerts_commit_failed", error=type(exc).__name__)

    def _forget(self, parts: set[int]) -> None:
        """Drop the state of partitions no longer owned (the next owner reads it from Kafka)."""
        if not parts:
            return
        mine = lambda name: self.partition_of(name) in parts
        for key in [k for k in self.stories if mine(k[0])]:
            self._set_story(key, None)
        for table in (self.throttles, self.disabled):
            for name in [n for n in table if mine(n)]:
                del table[name]
        for msg_id in [i for i, p in self.pending.items() if mine(p.subscription)]:
            del self.pending[msg_id]
        self.metrics.retries_pending.set(len(self.pending))

    async def _load(self, parts: set[int]) -> None:
        # auto_offset_reset must be "earliest": the default ("latest") can win the race against
        # seek_to_beginning and silently start the read at the end, restoring nothing.
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                                    auto_offset_reset="earliest", client_id="newswatch-alerts-restore")
        await consumer.start()
        records = 0
        try:
            tps = [TopicPartition(state_topic(self.topics), p) for p in sorted(parts)]
            consumer.assign(tps)
            ends = await consumer.end_offsets(tps)
            starts = await consumer.beginning_offsets(tps)
            await consumer.seek_to_beginning(*tps)
            for tp in tps:
                read = 0
                while await consumer.position(tp) < ends[tp]:
                    batch = await consumer.getmany(tp, timeout_ms=1000)
                    for record in batch.get(tp, []):
                        if record.offset < ends[tp]:
                            self._apply_state(record.key.decode("utf-8"), record.value)
                            read += 1
                if read == 0 and ends[tp] > starts.get(tp, 0):
                    raise BrokerError(f"{state_topic(self.topics)} partition {tp.partition} holds records up to "
                                      f"offset {ends[tp]} but none could be read; refusing to deliver without "
                                      "its pending deliveries")
                records += read
        finally:
            await consumer.stop()
        for name, record in list(self.disabled.items()):
            endpoint = self.endpoints.get(name)
            if self.partition_of(name) in parts and endpoint is not None \
                    and record.get("url_fingerprint") != url_fingerprint(endpoint):
                del self.disabled[name]  # its URL was changed since the 410: try the new one
                self._write(name, f"disabled/{name}", None)
                log_event(log, logging.WARNING, "subscription_reenabled", subscription=name,
                          reason="url_changed")
        for name in self.subscriptions:
            if self.partition_of(name) in parts:
                self.metrics.disabled.labels(name).set(1 if name in self.disabled else 0)
        self.metrics.retries_pending.set(len(self.pending))
        await self._flush()
        log_event(log, logging.INFO, "alerts_state_restored", partitions=_names(parts), state_records=records,
                  pending=len(self.pending), stories=len(self.stories),
                  disabled=",".join(sorted(self.disabled)) or "-")

    def _set_story(self, key: tuple[str, str], state: noise.StoryState | None) -> None:
        if state is None:
            self.stories.pop(key, None)
            self._due.pop(key, None)
            return
        self.stories[key] = state
        if state.due_at is not None:
            self._due[key] = None
        else:
            self._due.pop(key, None)

    def _apply_state(self, key: str, value: bytes | None) -> None:
        kind, _, rest = key.partition("/")
        if kind == "pending":
            if value is None:
                self.pending.pop(rest, None)
            else:
                self.pending[rest] = decode(value, PendingDelivery)
        elif kind == "story":
            name, _, story = rest.partition("/")
            if value is None:
                self._set_story((name, story), None)
            else:
                self._set_story((name, story), noise.StoryState.model_validate_json(value))
        elif kind == "throttle":
            if value is None:
                self.throttles.pop(rest, None)
            else:
                self.throttles[rest] = noise.ThrottleState.model_validate_json(value)
        elif kind == "disabled":
            if value is None:
                self.disabled.pop(rest, None)
            else:
                self.disabled[rest] = json.loads(value)

    # --- Kafka writes -----------------------------------------------------------------------

    def _write(self, subscription: str, key: str, value) -> None:
        """Queue a state record of `subscription` (a model, a dict, or None for a tombstone) for its
        partition; `_flush()` sends them in order."""
        if value is None:
            raw = None
        elif isinstance(value, dict):
            raw = json.dumps(value).encode("utf-8")
        else:
            raw = value.model_dump_json(by_alias=True).encode("utf-8")
        self._unflushed.append((state_topic(self.topics), self.partition_of(subscription), key.encode("utf-8"), raw))

    async def _flush(self, wait: bool = True) -> None:
        """Send the queued writes in order; with `wait`, return once the broker acknowledged all (acks=all)."""
        # One flush sends at a time, so records reach the topic in the order they were written
        # (a story's "due" state must never land after its "released" state).
        async with self._flush_lock:
            writes, self._unflushed = self._unflushed, []
            state = state_topic(self.topics)
            if any(topic == state for topic, *_ in writes) and not await self._confirm_membership():
                # Frozen or cut off past the session timeout: the partitions may have a new owner that
                # already read their state, and a write now would land behind its back. Exit instead;
                # nothing is lost (the next owner has what was written, and repeats the rest).
                error = BrokerError("this alerts process is no longer a member of its consumer group; exiting "
                                    "rather than writing state another process may own now (restart it)")
                log_event(log, logging.ERROR, "alerts_not_a_member", dropped_writes=len(writes))
                self._fatal = self._fatal or error
                raise error
            acks = [await self._producer.send(topic, key=key, value=raw, partition=partition)
                    for topic, partition, key, raw in writes]
        if wait:
            await asyncio.gather(*acks)
        else:  # awaited at shutdown or revoke, so a failed write is reported rather than dropped
            self._unacked = [ack for ack in self._unacked if not ack.done()] + acks

    async def _dead_letter(self, pending: PendingDelivery, reason: str, now: datetime) -> None:
        letter = AlertDeadLetter.from_pending(pending, reason, now)
        await self._producer.send_and_wait(self.topics.alerts_dlq, key=pending.id.encode("utf-8"),
                                           value=letter.encode())
        self.pending.pop(pending.id, None)
        self._write(pending.subscription, f"pending/{pending.id}", None)
        self.metrics.dlq_records.inc()
        log_event(log, logging.ERROR, "alert_dead_lettered", subscription=pending.subscription,
                  webhook_id=pending.id, reason=reason, status=pending.last_status, attempts=pending.attempts)

    # --- records in -------------------------------------------------------------------------

    async def _consume_from(self, consumer: AIOKafkaConsumer) -> None:
        routed = routed_topic(self.topics)
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=500)
            if self._fatal is not None:
                raise self._fatal
            if not batches:
                continue
            now = self.clock()
            for tp, records in batches.items():
                for record in records:
                    if tp not in self._assigned:
                        break  # revoked meanwhile: its next owner reads it from the last commit
                    if tp.topic == routed:
                        if tp.partition not in self.owned:
                            consumer.seek(tp, record.offset)  # assigned, state still loading: read it again
                            break
                        self._on_routed_record(record, now)
                    else:
                        await self._on_match_record(record, now)
                    self._processed[tp] = record.offset + 1
            await self._flush()
            # Only after the records these produced are durable, and only for partitions still held.
            offsets = {tp: offset for tp, offset in self._processed.items() if tp in self._assigned}
            if offsets:
                try:
                    started = time.monotonic()
                    await consumer.commit(offsets)
                    self._committed.update(offsets)
                    self._lease_until = started + MEMBERSHIP_LEASE  # an accepted commit confirms membership
                except KafkaError as exc:  # a rebalance came first: the next owner repeats them, harmlessly
                    log_event(log, logging.WARNING, "alerts_commit_failed", error=type(exc).__name__)
            self._wake.set()

    async def _on_match_record(self, record, now: datetime) -> None:
        """Router: a Match from any partition goes to the partition of each subscription that wants it."""
        try:
            match = decode(record.value, Match)
        except SchemaError as exc:
            self.metrics.bad_records.inc()
            letter = DeadLetter(stage="alerts", error=exc.reason, time=now, topic=record.topic,
                                partition=record.partition, offset=record.offset,
                                key=record.key.decode("utf-8", "replace") if record.key else None,
                                value=record.value.decode("utf-8", "replace") if record.value else None)
            await self._producer.send_and_wait(self.topics.articles_dlq, key=record.key, value=letter.encode())
            log_event(log, logging.WARNING, "bad_match_record", reason=exc.reason, offset=record.offset)
            return
        per_partition: dict[int, list[Route]] = {}
        for decision in route(match, list(self.subscriptions.values()), self.silences, now):
            if not decision.deliver:
                self.metrics.decisions.labels(decision.subscription, decision.reason).inc()
                log_event(log, logging.DEBUG, "alert_not_routed", subscription=decision.subscription,
                          story_id=match.story_id, article_id=match.id, reason=decision.reason)
                continue
            per_partition.setdefault(self.partition_of(decision.subscription), []).append(
                Route(subscription=decision.subscription, topics=decision.topics))
        if per_partition:
            # The text is in no alert; without it a routed record is a fraction of the Match.
            kept = match.model_copy(update={"text": "", "topics": ()})
            for partition, routes in per_partition.items():
                routed = RoutedMatch(match=kept, routes=tuple(routes))
                self._unflushed.append((routed_topic(self.topics), partition, match.story_id.encode("utf-8"),
                                        routed.encode()))

    def _on_routed_record(self, record, now: datetime) -> None:
        """Owner: fold a routed Match into the story state of each subscription it was routed to."""
        try:
            routed = decode(record.value, RoutedMatch)
        except SchemaError as exc:  # only this stage writes the topic: a bug or a newer version
            self.metrics.bad_records.inc()
            log_event(log, logging.ERROR, "bad_routed_record", reason=exc.reason, partition=record.partition,
                      offset=record.offset)
            return
        match = routed.match
        for target in routed.routes:
            sub = self.subscriptions.get(target.subscription)
            if sub is None or sub.name in self.disabled:
                continue  # removed from the config since it was routed, or disabled by a 410: not routed at all
            key = (sub.name, match.story_id)
            state, reason = noise.observe(self.stories.get(key), sub.name, match, target.topics, now,
                                          sub.grouping or self.settings.grouping)
            self._set_story(key, state)
            self._write(sub.name, f"story/{sub.name}/{match.story_id}", state)
            self.metrics.decisions.labels(sub.name, reason).inc()
            log_event(log, logging.DEBUG, "story_observed", subscription=sub.name, story_id=match.story_id,
                      article_id=match.id, reason=reason,
                      due_at=state.due_at.isoformat() if state.due_at else "-")

    # --- due work out -----------------------------------------------------------------------

    async def _tick_loop(self) -> None:
        while True:
            if self._fatal is not None:
                raise self._fatal
            now = self.clock()
            await self._tick(now)
            await wait_woken(self._wake, self._sleep_for(self.clock()))
            self._wake.clear()

    def _sleep_for(self, now: datetime) -> float:
        times = [self.stories[key].due_at for key in self._due]
        times += [p.next_attempt_at for i, p in self.pending.items() if i not in self.in_flight]
        if not times:
            return MAX_TICK
        return min(MAX_TICK, max(0.0, (min(times) - now).total_seconds()))

    def _reload_silences(self, now: datetime) -> None:
        if self.poll_silences is None or now - self._silences_checked < SILENCE_POLL:
            return
        self._silences_checked = now
        try:
            silences = self.poll_silences()
        except ConfigError as exc:
            log_event(log, logging.ERROR, "silences_not_reloaded", error=str(exc).splitlines()[0])
            return
        if silences is not None:
            self.silences = silences
            log_event(log, logging.INFO, "silences_reloaded", active=sum(1 for s in silences if s.active(now)))

    async def _tick(self, now: datetime) -> None:
        self._reload_silences(now)
        # Oldest first (then arrival order), so a throttle admits the stories that came first.
        for key in sorted(self._due, key=lambda k: self.stories[k].due_at):
            state = self.stories[key]
            if not self.owns(key[0]):
                continue  # its partition is being handed on
            # A disabled subscription's due alerts still become deliveries: they are dead-lettered
            # below as "subscription_disabled", so `replay` can send them once the URL is fixed.
            if state.is_due(now):
                self._release_story(key, state, now)
        for name, throttle in list(self.throttles.items()):
            if throttle.held and name in self.subscriptions and name not in self.disabled and self.owns(name):
                self._release_digest(self.subscriptions[name], throttle, now)
        if now - self._last_sweep > timedelta(minutes=1):
            self._sweep(now)
        await self._flush()
        due = [p for p in self.pending.values()
               if p.id not in self.in_flight and p.next_attempt_at <= now and self.owns(p.subscription)]
        if due and not await self._confirm_membership():
            due = []
        for pending in sorted(due, key=lambda p: p.next_attempt_at):
            if pending.id in self.in_flight or pending.next_attempt_at > now or not self.owns(pending.subscription):
                continue
            name = pending.subscription
            if name in self.disabled or name not in self.endpoints:
                # Kept replayable rather than waiting forever for a receiver that is not there.
                reason = ("subscription_disabled" if name in self.disabled else
                          "subscription_removed" if name not in self.subscriptions else "subscription_not_enabled")
                await self._dead_letter(pending, reason, now)
                continue
            self.in_flight[pending.id] = pending.subscription
            self._pool.submit(pending)
        self.metrics.retries_pending.set(len(self.pending))
        await self._flush()

    def _release_story(self, key: tuple[str, str], state: noise.StoryState, now: datetime) -> None:
        sub = self.subscriptions.get(key[0])
        if sub is None:  # removed from the config: forget it
            self._set_story(key, None)
            self._write(key[0], f"story/{key[0]}/{key[1]}", None)
            return
        throttle = self.throttles.get(sub.name) or noise.ThrottleState(subscription=sub.name)
        throttle, verdict = noise.admit(throttle, now, sub.throttle.max_per_hour if sub.throttle else None)
        if verdict == "throttled":
            match = state.match
            throttle = noise.hold(throttle, noise.HeldAlert(
                story_id=state.story_id, title=match.title, url=match.url, source=match.source, lang=match.lang,
                topics=tuple(h.topic for h in state.topics), sources_count=len(state.sources), held_at=now))
            self.metrics.decisions.labels(sub.name, "throttled").inc()
            log_event(log, logging.INFO, "alert_throttled", subscription=sub.name, story_id=state.story_id,
                      held=len(throttle.held))
        else:
            msg_id = delivery_id(sub.name, state.story_id, (h.topic for h in state.topics),
                                 (s.article_id for s in state.sources))
            payload, raw = encode_payload(state, msg_id, now)
            self._add_pending(PendingDelivery(id=msg_id, subscription=sub.name, kind="alert",
                                              story_id=state.story_id, body=raw.decode("utf-8"),
                                              created_at=now, next_attempt_at=now))
            log_event(log, logging.INFO, "alert_due", subscription=sub.name, story_id=state.story_id,
                      webhook_id=msg_id, reason=payload.reason, sources=payload.sources_count,
                      topics=",".join(h.topic for h in payload.topics), truncated=payload.truncated)
        if sub.throttle:
            self.throttles[sub.name] = throttle
            self._write(sub.name, f"throttle/{sub.name}", throttle)
        released = noise.release(state, now)
        self._set_story(key, released)
        self._write(key[0], f"story/{key[0]}/{key[1]}", released)

    def _release_digest(self, sub: Subscription, throttle: noise.ThrottleState, now: datetime) -> None:
        throttle, held = noise.take_digest(throttle, now, sub.throttle.max_per_hour if sub.throttle else None)
        if not held:
            return
        msg_id = delivery_id(sub.name, "digest", (h.story_id for h in held), (h.held_at.isoformat() for h in held))
        digest = build_digest(sub.name, held, msg_id, now)
        self._add_pending(PendingDelivery(id=msg_id, subscription=sub.name, kind="digest",
                                          body=encode_body(digest).decode("utf-8"), created_at=now,
                                          next_attempt_at=now))
        self.throttles[sub.name] = throttle
        self._write(sub.name, f"throttle/{sub.name}", throttle)
        log_event(log, logging.INFO, "digest_due", subscription=sub.name, webhook_id=msg_id, alerts=len(held))

    def _add_pending(self, pending: PendingDelivery) -> None:
        existing = self.pending.get(pending.id)
        if existing is not None:  # the same alert again (a re-read after a crash): keep its bookkeeping
            return
        self.pending[pending.id] = pending
        self._write(pending.subscription, f"pending/{pending.id}", pending)

    def _sweep(self, now: datetime) -> None:
        self._last_sweep = now
        for key, state in list(self.stories.items()):
            if noise.is_stale(state, now, STORY_RETENTION) and self.owns(key[0]):
                self._set_story(key, None)
                self._write(key[0], f"story/{key[0]}/{key[1]}", None)

    async def _deliver(self, pending: PendingDelivery) -> None:
        """One attempt and its bookkeeping (runs in the subscription's worker)."""
        name = pending.subscription
        try:
            if not self.owns(name) or not self._leased():
                return  # queued before its partition was revoked (the next owner attempts it) or a stall
            try:
                client = self._clients.get(name) or self._clients.setdefault(name, self.client_factory())
                result = await attempt(client, pending, self.subscriptions[name], self.endpoints[name],
                                       self.clock(), self.settings.timeout)
            except Exception as exc:  # a body we cannot render or sign would fail forever: park it
                log_event(log, logging.ERROR, "delivery_failed_internally", subscription=name,
                          webhook_id=pending.id, error=type(exc).__name__)
                await self._dead_letter(pending.model_copy(update={"last_error": type(exc).__name__}),
                                        "internal_error", self.clock())
                await self._flush()
                return
            now = self.clock()
            step = after_attempt(pending, result, now, self.settings, self.random_unit())
            fields = dict(subscription=name, webhook_id=pending.id, story_id=pending.story_id or "-",
                          attempt=step.pending.attempts, status=result.status, reason=step.reason,
                          elapsed_ms=round(result.elapsed * 1000))
            outcome = {"delivered": "delivered", "retry": "retry", "dead": "dead", "disable": "disabled"}[step.verdict]
            self.metrics.deliveries.labels(name, outcome, step.reason).inc()
            if step.verdict == "delivered":
                self.pending.pop(pending.id, None)
                self._write(name, f"pending/{pending.id}", None)
                self.metrics.latency.observe(max(0.0, (now - pending.created_at).total_seconds()))
                log_event(log, logging.INFO, "alert_delivered", **fields)
            elif step.verdict == "retry":
                self.pending[pending.id] = step.pending
                self._write(name, f"pending/{pending.id}", step.pending)
                log_event(log, logging.WARNING, "alert_retry_scheduled", **fields,
                          next_attempt_at=step.pending.next_attempt_at.isoformat(), error=result.error or "-")
            elif step.verdict == "disable":
                self.disabled[name] = {"status": result.status, "at": now.isoformat(),
                                       "url_fingerprint": url_fingerprint(self.endpoints[name])}
                self._write(name, f"disabled/{name}", self.disabled[name])
                self.metrics.disabled.labels(name).set(1)
                log_event(log, logging.CRITICAL, "subscription_disabled", **fields,
                          action="the receiver answered 410 Gone: no more deliveries to this URL; "
                                 "change the subscription's url to re-enable it, then `newswatch alerts replay`")
                await self._dead_letter(step.pending, step.reason, now)
            else:
                await self._dead_letter(step.pending, step.reason, now)
            # Not waiting for the ack keeps a subscription's queue moving; if this record were lost
            # in a crash, the older one would only cause an early retry or a duplicate with the same
            # webhook-id (at-least-once), never a lost alert. The producer keeps the order.
            await self._flush(wait=False)
        finally:
            self.in_flight.pop(pending.id, None)
            self.metrics.retries_pending.set(len(self.pending))
            if pending.id in self.pending:  # rescheduled: the ticker may have to wake sooner
                self._wake.set()


def _names(parts: Iterable[int]) -> str:
    return ",".join(str(p) for p in sorted(parts)) or "-"
