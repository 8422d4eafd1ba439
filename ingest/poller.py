"""The asyncio orchestrator: poll each feed on its schedule and queue what is new for Kafka.

Thin on purpose: every decision is made by a pure function elsewhere (fetch's response value,
parse_feed, schedule.next_poll, the store's dedupe); this module only wires them together
under a global and a per-host concurrency limit, keeps feed health and updates the metrics.
All dependencies (HTTP client, store, parser, publisher, clock) are passed in.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone

import httpx

from newswatch.logs import log_event, safe_url
from newswatch.netguard import guarded_transport

from ingest.feeds_config import FeedConfig
from ingest.fetch import FetchError, FetchLimits, FetchResponse, Validators, fetch_feed
from ingest.metrics import IngestMetrics
from ingest.pages import PageFetcher, PageReader
from ingest.parse import FeedRefused, TextCaps
from ingest.schedule import ScheduleBounds, next_poll
from ingest.seen import FeedState, IngestStore
from ingest.settings import IngestSettings

log = logging.getLogger("ingest.poller")
PRUNE_EVERY_S = 86400.0


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def build_client(settings: IngestSettings) -> httpx.AsyncClient:
    """The one HTTP client all polls share: guarded transport, no redirects followed by httpx
    (fetch_feed follows and checks them), no proxy or netrc from the environment."""
    limits = httpx.Limits(max_connections=settings.concurrency, max_keepalive_connections=settings.concurrency)
    transport = guarded_transport(allow_private_networks=settings.allow_private_networks,
                                  allow_networks=settings.allow_networks, limits=limits)
    timeout = httpx.Timeout(connect=settings.connect_timeout_s, read=settings.fetch_deadline_s,
                            write=settings.fetch_deadline_s, pool=settings.fetch_deadline_s)
    return httpx.AsyncClient(transport=transport, timeout=timeout, follow_redirects=False, trust_env=False)


def fetch_limits(settings: IngestSettings) -> FetchLimits:
    return FetchLimits(max_body_bytes=settings.max_body_bytes, deadline_s=settings.fetch_deadline_s,
                       connect_timeout_s=settings.connect_timeout_s, max_redirects=settings.max_redirects,
                       user_agent=settings.user_agent)


def schedule_bounds(settings: IngestSettings) -> ScheduleBounds:
    return ScheduleBounds(floor_s=settings.interval_floor_s, ceiling_s=settings.interval_ceiling_s,
                          max_backoff_s=settings.max_backoff_s, max_server_delay_s=settings.max_server_delay_s)


def text_caps(settings: IngestSettings) -> TextCaps:
    return TextCaps(title=settings.max_title_chars, text=settings.max_text_chars, summary=settings.max_summary_chars)


@dataclass(frozen=True)
class PollReport:
    """What one poll did: outcome is new | unchanged | not_modified | error."""

    feed_url: str
    outcome: str
    reason: str | None = None
    status: int | None = None
    entries: int = 0
    queued: int = 0
    next_poll_at: datetime | None = None
    elapsed_s: float = 0.0


class Poller:
    def __init__(self, feeds: Sequence[FeedConfig], *, client: httpx.AsyncClient, store: IngestStore, parser,
                 metrics: IngestMetrics, settings: IngestSettings, on_queued: Callable[[], None] = lambda: None,
                 on_report: Callable[[PollReport], None] = lambda report: None,
                 clock: Callable[[], datetime] = utc_now, rand: Callable[[], float] = random.random,
                 pages: PageFetcher | None = None, extractor=None):
        self.feeds = list(feeds)
        self.client = client
        self.store = store
        self.parser = parser
        self.metrics = metrics
        self.settings = settings
        self.on_queued = on_queued
        self.on_report = on_report
        self.clock = clock
        self.rand = rand
        self.limits = fetch_limits(settings)
        self.bounds = schedule_bounds(settings)
        self.caps = text_caps(settings)
        self.states: dict[str, FeedState] = store.feed_states_for(feed.url for feed in self.feeds)
        self._global = asyncio.Semaphore(settings.concurrency)
        self._per_host: dict[str, asyncio.Semaphore] = defaultdict(lambda: asyncio.Semaphore(settings.per_host))
        self._failing = {url for url, state in self.states.items() if state.consecutive_failures}
        # Feed loops by url, and each loop's own halt (set when the feed is released to another
        # poller, `release()`): a loop ends after the poll it is in, never in the middle of one.
        self._tasks: dict[str, asyncio.Task] = {}
        self._halts: dict[str, asyncio.Event] = {}
        self._running = False
        self._moved: dict[str, str] = {}  # feed url -> where it said it moved, already logged
        # Article pages for teaser feeds (ingest/pages.py): their fetches count against the same
        # per-host limit as the feed polls; their text is extracted by `extractor` (a worker pool
        # of its own in `newswatch ingest`, so pages never queue feed parses; default: the parser).
        # Held articles a stopped run left go out now.
        self.pages = pages or PageFetcher(
            PageReader(client=client, extractor=extractor or parser, settings=settings, metrics=metrics,
                       per_host=self._per_host, clock=clock),
            store, settings=settings, metrics=metrics, on_released=on_queued)
        self.pages.resume()
        self.metrics.feeds_total.set(len(self.feeds))
        self.metrics.feeds_failing.set(len(self._failing))

    def _note_move(self, feed: FeedConfig, response: FetchResponse) -> None:
        """Warn once (per process and target) that a feed moved for good: the feeds file is the
        user's, so it is not rewritten, but every poll pays the extra round trips until it is."""
        moved_to = response.moved_to
        if moved_to is None or self._moved.get(feed.url) == moved_to:
            return
        if not (response.is_success or response.status == 304):
            return  # a move to a url that fails is no advice to follow
        self._moved[feed.url] = moved_to
        log_event(log, logging.WARNING, "feed_moved_permanently", feed=feed.display_name,
                  feed_url=safe_url(feed.url), moved_to=safe_url(moved_to),
                  hint="update the url in the feeds file")

    def _note_health(self, state: FeedState) -> None:
        if state.consecutive_failures:
            self._failing.add(state.url)
        else:
            self._failing.discard(state.url)
        self.metrics.feeds_failing.set(len(self._failing))

    async def poll_all(self) -> list[PollReport]:
        """Poll every feed once now (limits apply); for tests, benchmarks and a first cycle."""
        return list(await asyncio.gather(*(self.poll_feed(feed) for feed in self.feeds)))

    def _start_loop(self, feed: FeedConfig) -> None:
        halt = self._halts[feed.url] = asyncio.Event()
        self._tasks[feed.url] = asyncio.create_task(self._feed_loop(feed, halt), name=f"feed:{feed.url}")

    def adopt(self, feeds: Sequence[FeedConfig]) -> None:
        """Take on more feeds (shared mode: a partition of the feeds topic was assigned). Their
        states are read from the store now, so load them into it first."""
        known = {feed.url for feed in self.feeds}
        fresh = [feed for feed in feeds if feed.url not in known]
        self.feeds.extend(fresh)
        self.states.update(self.store.feed_states_for(feed.url for feed in fresh))
        for feed in fresh:
            self._note_health(self.states[feed.url])
            if self._running:
                self._start_loop(feed)
        self.metrics.feeds_total.set(len(self.feeds))

    async def release(self, urls: Sequence[str], grace_s: float) -> None:
        """Stop polling these feeds: each loop finishes the poll it is in (up to `grace_s`, then it
        is cancelled) and the feeds are forgotten here; their state stays in the store."""
        urls = set(urls)
        tasks = []
        for url in urls:
            if url in self._halts:
                self._halts.pop(url).set()
            if url in self._tasks:
                tasks.append(self._tasks.pop(url))
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=grace_s)
            for task in late:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        self.feeds = [feed for feed in self.feeds if feed.url not in urls]
        for url in urls:
            self.states.pop(url, None)
            self._failing.discard(url)
        self.metrics.feeds_total.set(len(self.feeds))
        self.metrics.feeds_failing.set(len(self._failing))

    async def run(self, stop: asyncio.Event) -> None:
        """Poll every feed on its own schedule until `stop` is set."""
        self._running = True
        for feed in self.feeds:
            self._start_loop(feed)
        last_prune = None
        try:
            while not stop.is_set():
                now = self.clock()
                if last_prune is None or (now - last_prune).total_seconds() >= PRUNE_EVERY_S:
                    removed = self.store.prune(now, self.settings.seen_retention_days)
                    if removed:
                        log_event(log, logging.INFO, "seen_pruned", keys=removed)
                    last_prune = now
                await _wait(stop, 60.0)
        finally:
            self._running = False
            tasks = list(self._tasks.values())
            self._tasks.clear()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.pages.close()

    async def _feed_loop(self, feed: FeedConfig, halt: asyncio.Event) -> None:
        while not halt.is_set():
            due = self.states[feed.url].next_poll_at
            delay = (due - self.clock()).total_seconds() if due else 0.0
            if delay > 0 and await _wait(halt, delay):
                return
            try:
                await self.poll_feed(feed)
            except Exception as exc:  # a bug must not end this feed's loop silently
                log.exception("poll_crashed", extra={"fields": {"feed_url": safe_url(feed.url)}})
                state = self.states[feed.url]
                self._finish(feed, state, "error", f"internal: {type(exc).__name__}", None, None, self.clock())

    async def poll_feed(self, feed: FeedConfig) -> PollReport:
        """Fetch, parse and queue one feed; never raises for anything the feed does."""
        began = time.monotonic()
        report = await self._poll(feed)
        report = replace(report, elapsed_s=time.monotonic() - began)
        self.on_report(report)
        return report

    async def _poll(self, feed: FeedConfig) -> PollReport:
        state = self.states[feed.url]
        validators = Validators(state.etag, state.last_modified)
        async with self._global, self._per_host[feed.host]:
            started = self.clock()
            try:
                response = await fetch_feed(self.client, feed.url, validators=validators, limits=self.limits)
            except FetchError as exc:
                self.metrics.fetch_seconds.observe((self.clock() - started).total_seconds())
                return self._fail(feed, state, exc.reason, exc.detail, exc.status, exc.retry_after_s, started)
        now = self.clock()
        self.metrics.fetch_seconds.observe(response.elapsed_s)
        self._note_move(feed, response)
        floor = _server_floor(response, now, None)
        if response.status == 304:
            return self._finish(feed, state.with_(**_validator_fields(response, validators)),
                                "not_modified", None, response.status, floor, now)
        if not response.is_success:
            retry_after = response.retry_after(now) if response.is_rate_limited else None
            return self._fail(feed, state, f"http_{response.status}", f"HTTP {response.status}",
                              response.status, retry_after, now)
        try:
            parsed = await self.parser.parse(
                response.content, response.url, fetched_at=now, feed_url=feed.url, feed_name=feed.name,
                lang_hint=feed.lang, tags=feed.tags, content_type=response.content_type, caps=self.caps)
        except FeedRefused as exc:
            return self._fail(feed, state, exc.reason, exc.detail, response.status, None, now)
        self.metrics.parse_seconds.observe((self.clock() - now).total_seconds())
        floor = _server_floor(response, now, parsed.ttl_s)
        done = self.clock()
        # Read-only look first, so the schedule can know the outcome; record_poll then queues
        # atomically (nothing else touches the store between the two: no await in between).
        outcome = "new" if self.store.unseen(parsed.entries) else "unchanged"
        decision = self._schedule(feed, state, outcome, floor, done)
        success = state.with_(**_validator_fields(response, validators), last_attempt_at=started,
                              last_success_at=done, consecutive_failures=0, last_error=None,
                              last_outcome=outcome, interval_s=decision.interval_s, next_poll_at=decision.at)
        queued = self.store.record_poll(success, parsed.entries, done,
                                        hold=lambda entry: self.pages.wants(feed.full_text, entry.article))
        self.states[feed.url] = success.with_(articles_total=state.articles_total + len(queued))
        self.metrics.polls.labels(outcome=outcome).inc()
        self.metrics.articles_queued.inc(len(queued))
        self.metrics.entries_skipped.inc(len(parsed.entries) - len(queued))
        self._note_health(success)
        if queued:
            held = [entry.article for entry in queued if self.pages.wants(feed.full_text, entry.article)]
            for article in held:
                self.pages.start(feed.display_name, article)  # the schedule does not wait for them
            log_event(log, logging.INFO, "feed_new_articles", feed=feed.display_name, feed_url=safe_url(feed.url),
                      new=len(queued), entries=len(parsed.entries), pages=len(held))
            if len(held) < len(queued):
                self.on_queued()
        return PollReport(feed.url, outcome, None, response.status, len(parsed.entries), len(queued), decision.at)

    def _schedule(self, feed: FeedConfig, state: FeedState, outcome: str, floor: float | None, now: datetime):
        return next_poll(now, outcome=outcome, interval_s=state.interval_s or feed.interval,
                         configured_s=feed.interval, failures=state.consecutive_failures + (outcome == "error"),
                         server_floor_s=floor, bounds=self.bounds, rand=self.rand())

    def _finish(self, feed: FeedConfig, state: FeedState, outcome: str, reason: str | None, status: int | None,
                floor: float | None, now: datetime) -> PollReport:
        decision = self._schedule(feed, state, outcome, floor, now)
        if outcome == "error":
            state = state.with_(consecutive_failures=state.consecutive_failures + 1, last_error=reason)
        else:
            state = state.with_(consecutive_failures=0, last_error=None, last_success_at=now)
        state = state.with_(last_attempt_at=now, last_outcome=outcome, interval_s=decision.interval_s,
                            next_poll_at=decision.at)
        self.store.save_feed(state)
        self.states[feed.url] = state
        self.metrics.polls.labels(outcome=outcome).inc()
        self._note_health(state)
        return PollReport(feed.url, outcome, reason.split(":")[0] if reason else None, status,
                          next_poll_at=decision.at)

    def _fail(self, feed: FeedConfig, state: FeedState, reason: str, detail: str, status: int | None,
              retry_after: float | None, now: datetime) -> PollReport:
        self.metrics.feed_errors.labels(reason=reason).inc()
        report = self._finish(feed, state, "error", f"{reason}: {detail}"[:300], status, retry_after, now)
        log_event(log, logging.WARNING, "feed_failed", feed=feed.display_name, feed_url=safe_url(feed.url),
                  reason=reason, detail=detail[:200], failures=self.states[feed.url].consecutive_failures,
                  next_poll_at=report.next_poll_at.isoformat(timespec="seconds"))
        return report


def _validator_fields(response: FetchResponse, previous: Validators) -> dict:
    fresh = response.validators(previous)
    return {"etag": fresh.etag, "last_modified": fresh.last_modified}


def _server_floor(response: FetchResponse, now: datetime, ttl_s: float | None) -> float | None:
    """The longest wait the server asked for: Retry-After, Cache-Control max-age, RSS ttl."""
    hints = [h for h in (response.retry_after(now), response.max_age, ttl_s) if h is not None]
    return max(hints) if hints else None


async def _wait(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep up to `seconds`; True when `stop` was set meanwhile."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
        return True
    except TimeoutError:
        return False
