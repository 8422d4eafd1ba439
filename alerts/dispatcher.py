"""The alerts process: Matches in from Kafka, signed webhooks out, every promise kept in Kafka.

Lifecycle of `Dispatcher.run(stop)`:
  1. make sure `<prefix>alerts.state` (compacted) and the DLQ topics exist;
  2. restore state by reading `alerts.state` to its end: story states, throttles, disabled
     subscriptions and *pending deliveries* (so a restart, even after SIGKILL, loses none);
  3. consume `<prefix>matches` (consumer group, manual commits): route -> observe, write the new
     story states, and only then commit the offsets;
  4. a ticker turns due stories into PendingDelivery records (written before any attempt), and
     hands due deliveries to the per-subscription DeliveryPool; each outcome is written back
     (next attempt, tombstone when done, DLQ record when given up).
Every decision here comes from the pure modules (route, noise, retry, payload); this module
only moves data between them, Kafka and HTTP.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from alerts import noise
from alerts.deliver import DeliveryPool, after_attempt, attempt, host_of
from alerts.metrics import AlertMetrics
from alerts.payload import build_digest, encode_body, encode_payload
from alerts.records import AlertDeadLetter, PendingDelivery
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


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def state_topic(topics: Topics) -> str:
    return topics.name("alerts.state")


def url_fingerprint(endpoint: Endpoint) -> str:
    """Identifies a URL without revealing it (a 410 disables that URL, not the subscription name)."""
    return hashlib.sha256(endpoint.url.reveal().encode("utf-8")).hexdigest()[:16]


def ensure_topics(bootstrap: str, topics: Topics) -> None:
    """Create the matches topic it reads, the state topic (compacted) and the DLQ topics when missing
    (blocking; run in a thread)."""
    from kafka import KafkaAdminClient

    from newswatch.topic_setup import TopicSpec, ensure_topics as ensure_shared_topics

    # Before subscribing: a consumer that subscribes to a missing topic hears of it only at its next
    # metadata refresh, whichever stage creates it meanwhile.
    ensure_shared_topics(bootstrap, [TopicSpec(topics.matches, topics.partitions)], client_id="newswatch-alerts-admin")
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="newswatch-alerts-admin")
    try:
        existing = set(admin.list_topics())
        wanted = [NewTopic(state_topic(topics), 1, 1, topic_configs={"cleanup.policy": "compact"}),
                  NewTopic(topics.alerts_dlq, 1, 1), NewTopic(topics.articles_dlq, 1, 1)]
        missing = [t for t in wanted if t.name not in existing]
        if missing:
            try:
                admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass  # another process created it in between
    finally:
        admin.close()


class Dispatcher:
    """Runs the alerts stage against one broker and one set of subscriptions.

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
        self.stories: dict[tuple[str, str], noise.StoryState] = {}
        # Stories with an alert due (a dict as an insertion-ordered set), so ticks skip the rest.
        self._due: dict[tuple[str, str], None] = {}
        self.throttles: dict[str, noise.ThrottleState] = {}
        self.pending: dict[str, PendingDelivery] = {}
        self.disabled: dict[str, dict] = {}
        self.in_flight: set[str] = set()
        self.ready = asyncio.Event()
        self._wake = asyncio.Event()
        self._unflushed: list[tuple[bytes, bytes | None]] = []
        self._unacked: list[asyncio.Future] = []
        self._flush_lock = asyncio.Lock()
        self._producer: AIOKafkaProducer | None = None
        self._pool: DeliveryPool | None = None
        self._last_sweep = datetime.min.replace(tzinfo=timezone.utc)

    # --- lifecycle ------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set; pending work stays in Kafka for the next start."""
        await asyncio.to_thread(ensure_topics, self.bootstrap, self.topics)
        # State records are a few kB each and one partition takes one batch in flight at a time:
        # with the 16 kB default a burst of 500 alerts needed ~100 sequential round trips.
        self._producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True,
                                          max_batch_size=512 * 1024, client_id="newswatch-alerts")
        await self._producer.start()
        try:
            await self._restore()
            self._pool = DeliveryPool(self._deliver, self.settings.per_host_concurrency,
                                      lambda name: host_of(self.endpoints[name].url.reveal()))
            # Pending retries start at once: joining the consumer group can take a session timeout
            # after a crash, and must not hold back what is already owed to subscribers.
            tasks = [asyncio.create_task(self._tick_loop(), name="tick"),
                     asyncio.create_task(self._consume(), name="consume-matches")]
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
                await self._pool.close(grace=self.settings.timeout + 1)
                log_event(log, logging.DEBUG, "alerts_workers_stopped")
        finally:
            for result in await asyncio.gather(*self._unacked, return_exceptions=True):
                if isinstance(result, Exception):
                    log_event(log, logging.ERROR, "state_write_failed", error=type(result).__name__)
            await self._producer.stop()
            await asyncio.gather(*(client.aclose() for client in self._clients.values()), return_exceptions=True)

    async def _restore(self) -> None:
        # auto_offset_reset must be "earliest": the default ("latest") can win the race against
        # seek_to_beginning and silently start the read at the end, restoring nothing.
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                                    auto_offset_reset="earliest", client_id="newswatch-alerts-restore")
        await consumer.start()
        try:
            state_tp, dlq_tp = TopicPartition(state_topic(self.topics), 0), TopicPartition(self.topics.alerts_dlq, 0)
            consumer.assign([state_tp, dlq_tp])
            ends = await consumer.end_offsets([state_tp, dlq_tp])
            starts = await consumer.beginning_offsets([state_tp, dlq_tp])
            self.metrics.dlq_records.set(ends[dlq_tp] - starts[dlq_tp])
            consumer.pause(dlq_tp)
            await consumer.seek_to_beginning(state_tp)
            records = 0
            self._state_end = ends[state_tp]
            while await consumer.position(state_tp) < ends[state_tp]:
                batch = await consumer.getmany(state_tp, timeout_ms=1000)
                for record in batch.get(state_tp, []):
                    self._apply_state(record.key.decode("utf-8"), record.value)
                    records += 1
            if records == 0 and ends[state_tp] > starts.get(state_tp, 0):
                raise BrokerError(f"{state_topic(self.topics)} holds records up to offset {ends[state_tp]} "
                                  "but none could be read; refusing to start without the pending deliveries")
        finally:
            await consumer.stop()
        for name, record in list(self.disabled.items()):
            endpoint = self.endpoints.get(name)
            if endpoint is not None and record.get("url_fingerprint") != url_fingerprint(endpoint):
                del self.disabled[name]  # its URL was changed since the 410: try the new one
                self._write(f"disabled/{name}", None)
                log_event(log, logging.WARNING, "subscription_reenabled", subscription=name,
                          reason="url_changed")
        for name in self.subscriptions:
            self.metrics.disabled.labels(name).set(1 if name in self.disabled else 0)
        self.metrics.retries_pending.set(len(self.pending))
        await self._flush()
        log_event(log, logging.INFO, "alerts_state_restored", state_records=records, state_end=self._state_end,
                  pending=len(self.pending),
                  stories=len(self.stories), disabled=",".join(sorted(self.disabled)) or "-")

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

    def _write(self, key: str, value) -> None:
        """Queue a state record (a model, a dict, or None for a tombstone); `_flush()` sends them in order."""
        if value is None:
            raw = None
        elif isinstance(value, dict):
            raw = json.dumps(value).encode("utf-8")
        else:
            raw = value.model_dump_json(by_alias=True).encode("utf-8")
        self._unflushed.append((key.encode("utf-8"), raw))

    async def _flush(self, wait: bool = True) -> None:
        """Send the queued writes in order; with `wait`, return once the broker acknowledged all (acks=all)."""
        # One flush sends at a time, so records reach the topic in the order they were written
        # (a story's "due" state must never land after its "released" state).
        async with self._flush_lock:
            writes, self._unflushed = self._unflushed, []
            acks = [await self._producer.send(state_topic(self.topics), key=key, value=raw) for key, raw in writes]
        if wait:
            await asyncio.gather(*acks)
        else:  # awaited at shutdown, so a failed write is reported rather than dropped
            self._unacked = [ack for ack in self._unacked if not ack.done()] + acks

    async def _dead_letter(self, pending: PendingDelivery, reason: str, now: datetime) -> None:
        letter = AlertDeadLetter.from_pending(pending, reason, now)
        await self._producer.send_and_wait(self.topics.alerts_dlq, key=pending.id.encode("utf-8"),
                                           value=letter.encode())
        self.pending.pop(pending.id, None)
        self._write(f"pending/{pending.id}", None)
        self.metrics.dlq_records.inc()
        log_event(log, logging.ERROR, "alert_dead_lettered", subscription=pending.subscription,
                  webhook_id=pending.id, reason=reason, status=pending.last_status, attempts=pending.attempts)

    # --- matches in -------------------------------------------------------------------------

    async def _consume(self) -> None:
        consumer = AIOKafkaConsumer(self.topics.matches, bootstrap_servers=self.bootstrap,
                                    group_id=self.group_id, enable_auto_commit=False,
                                    auto_offset_reset="earliest", client_id="newswatch-alerts",
                                    metadata_max_age_ms=METADATA_MAX_AGE_MS)  # notices added partitions
        await consumer.start()
        try:
            self.ready.set()
            await self._consume_from(consumer)
        finally:
            await consumer.stop()

    async def _consume_from(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=500)
            if not batches:
                continue
            now = self.clock()
            for records in batches.values():
                for record in records:
                    await self._on_match_record(record, now)
            await self._flush()
            await consumer.commit()  # only after the states these matches produced are durable
            self._wake.set()

    async def _on_match_record(self, record, now: datetime) -> None:
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
        active = [sub for name, sub in self.subscriptions.items() if name not in self.disabled]
        for decision in route(match, active, self.silences, now):
            if not decision.deliver:
                self.metrics.decisions.labels(decision.subscription, decision.reason).inc()
                log_event(log, logging.DEBUG, "alert_not_routed", subscription=decision.subscription,
                          story_id=match.story_id, article_id=match.id, reason=decision.reason)
                continue
            sub = self.subscriptions[decision.subscription]
            key = (sub.name, match.story_id)
            state, reason = noise.observe(self.stories.get(key), sub.name, match, decision.topics, now,
                                          sub.grouping or self.settings.grouping)
            self._set_story(key, state)
            self._write(f"story/{sub.name}/{match.story_id}", state)
            self.metrics.decisions.labels(sub.name, reason).inc()
            log_event(log, logging.DEBUG, "story_observed", subscription=sub.name, story_id=match.story_id,
                      article_id=match.id, reason=reason,
                      due_at=state.due_at.isoformat() if state.due_at else "-")

    # --- due work out -----------------------------------------------------------------------

    async def _tick_loop(self) -> None:
        while True:
            now = self.clock()
            await self._tick(now)
            try:
                await asyncio.wait_for(self._wake.wait(), self._sleep_for(self.clock()))
            except asyncio.TimeoutError:
                pass
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
            # A disabled subscription's due alerts still become deliveries: they are dead-lettered
            # below as "subscription_disabled", so `replay` can send them once the URL is fixed.
            if state.is_due(now):
                self._release_story(key, state, now)
        for name, throttle in list(self.throttles.items()):
            if throttle.held and name in self.subscriptions and name not in self.disabled:
                self._release_digest(self.subscriptions[name], throttle, now)
        if now - self._last_sweep > timedelta(minutes=1):
            self._sweep(now)
        await self._flush()
        for pending in sorted(self.pending.values(), key=lambda p: p.next_attempt_at):
            if pending.id in self.in_flight or pending.next_attempt_at > now:
                continue
            name = pending.subscription
            if name in self.disabled or name not in self.endpoints:
                # Kept replayable rather than waiting forever for a receiver that is not there.
                reason = ("subscription_disabled" if name in self.disabled else
                          "subscription_removed" if name not in self.subscriptions else "subscription_not_enabled")
                await self._dead_letter(pending, reason, now)
                continue
            self.in_flight.add(pending.id)
            self._pool.submit(pending)
        self.metrics.retries_pending.set(len(self.pending))
        await self._flush()

    def _release_story(self, key: tuple[str, str], state: noise.StoryState, now: datetime) -> None:
        sub = self.subscriptions.get(key[0])
        if sub is None:  # removed from the config: forget it
            self._set_story(key, None)
            self._write(f"story/{key[0]}/{key[1]}", None)
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
            self._write(f"throttle/{sub.name}", throttle)
        released = noise.release(state, now)
        self._set_story(key, released)
        self._write(f"story/{key[0]}/{key[1]}", released)

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
        self._write(f"throttle/{sub.name}", throttle)
        log_event(log, logging.INFO, "digest_due", subscription=sub.name, webhook_id=msg_id, alerts=len(held))

    def _add_pending(self, pending: PendingDelivery) -> None:
        existing = self.pending.get(pending.id)
        if existing is not None:  # the same alert again (a re-read after a crash): keep its bookkeeping
            return
        self.pending[pending.id] = pending
        self._write(f"pending/{pending.id}", pending)

    def _sweep(self, now: datetime) -> None:
        self._last_sweep = now
        for key, state in list(self.stories.items()):
            if noise.is_stale(state, now, STORY_RETENTION):
                self._set_story(key, None)
                self._write(f"story/{key[0]}/{key[1]}", None)

    async def _deliver(self, pending: PendingDelivery) -> None:
        """One attempt and its bookkeeping (runs in the subscription's worker)."""
        name = pending.subscription
        try:
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
                self._write(f"pending/{pending.id}", None)
                self.metrics.latency.observe(max(0.0, (now - pending.created_at).total_seconds()))
                log_event(log, logging.INFO, "alert_delivered", **fields)
            elif step.verdict == "retry":
                self.pending[pending.id] = step.pending
                self._write(f"pending/{pending.id}", step.pending)
                log_event(log, logging.WARNING, "alert_retry_scheduled", **fields,
                          next_attempt_at=step.pending.next_attempt_at.isoformat(), error=result.error or "-")
            elif step.verdict == "disable":
                self.disabled[name] = {"status": result.status, "at": now.isoformat(),
                                       "url_fingerprint": url_fingerprint(self.endpoints[name])}
                self._write(f"disabled/{name}", self.disabled[name])
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
            self.in_flight.discard(pending.id)
            self.metrics.retries_pending.set(len(self.pending))
            if pending.id in self.pending:  # rescheduled: the ticker may have to wake sooner
                self._wake.set()
