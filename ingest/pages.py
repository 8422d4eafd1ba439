"""Article pages for teaser feeds: fetch an entry's link and publish the article with its page's text.

Pure rules at the heart (`wants_page`, `with_page_text`, `host_pause_s`); the I/O in two layers:

  * `PageReader.read(article)` fetches one page with every defence of the feed fetch (it *is*
    the feed fetch, `ingest.fetch.fetch_feed`: address guard at connect time and after every
    redirect, size cap while streaming, decompression cap, total deadline, redirect limit),
    counting against the host's concurrency limit shared with feed polls, honouring a 429/503
    Retry-After for the whole host, and extracts the text in a worker process with a time
    budget. It returns the article to publish and the outcome: never raises for what a page does.
  * `PageFetcher` runs one `read` per held article in the background of the poller: the article
    waits in the state file's page_wait table (the outbox does not see it), and goes to the outbox
    when the read ends or after `page_wait_s`, whichever comes first, with the page's text
    (`text_source: page`) or the feed's (`text_source: feed`). A feed's schedule never waits
    for its pages. Each article is read at most once: rows left by a stopped process are
    released as they are at the next start.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import urlsplit

import httpx

from newswatch.logs import log_event, safe_url
from newswatch.schemas import Article

from ingest.extract import PageRefused, PageText
from ingest.fetch import FetchError, FetchLimits, fetch_feed
from ingest.metrics import IngestMetrics
from ingest.parse import FeedRefused, dominant_script, language_of_script
from ingest.settings import IngestSettings

log = logging.getLogger("ingest.pages")
ACCEPT_HTML = "text/html, application/xhtml+xml;q=0.9, */*;q=0.1"
DEFAULT_PAUSE_S = 60.0  # a 429/503 without Retry-After still pauses the host this long


# --- pure rules ----------------------------------------------------------------------------

def wants_page(mode: str, article: Article, min_chars: int) -> bool:
    """Should ingest fetch this entry's page? `never`: no; `always`: when it has an http(s) link;
    `auto`: when it has one and the feed's text is shorter than `min_chars` (plain text)."""
    if mode == "never" or not article.url or urlsplit(article.url).scheme.lower() not in ("http", "https"):
        return False
    return mode == "always" or len(article.text) < min_chars


def with_page_text(article: Article, page: PageText) -> Article | None:
    """The article with its page's text (`text_source: page`); the page's date and byline fill
    what the feed left empty; None when the page says less than the feed did. The language is
    the article's unless the page's words are clearly in another script (a teaser too short to
    tell, in a feed declared in another language)."""
    if len(page.text) <= len(article.text):
        return None
    lang = article.lang
    page_script = dominant_script(f"{article.title} {page.text}")
    if lang is None or (page_script and dominant_script(f"{article.title} {article.text}") != page_script):
        lang = language_of_script(f"{article.title} {page.text}") or lang
    return article.model_copy(update={
        "text": page.text, "text_source": "page", "lang": lang,
        "published_at": article.published_at or page.published_at,
        "authors": article.authors or page.authors})


def host_pause_s(status: int, retry_after_s: float | None, cap_s: float) -> float | None:
    """How long a host's pages wait after this answer: a 429/503 pauses it for its Retry-After
    (DEFAULT_PAUSE_S without one), at most `cap_s`; any other status does not."""
    if status not in (429, 503):
        return None
    return min(cap_s, retry_after_s if retry_after_s is not None else DEFAULT_PAUSE_S)


# --- one page --------------------------------------------------------------------------------

@dataclass(frozen=True)
class PageOutcome:
    """What one page read did: outcome ok | failed | skipped, reason (a stable word) and detail."""

    outcome: str
    reason: str | None = None
    detail: str = ""
    elapsed_s: float = 0.0
    extract_cpu_s: float | None = None


def page_limits(settings: IngestSettings) -> FetchLimits:
    return FetchLimits(max_body_bytes=settings.page_max_bytes, deadline_s=settings.page_deadline_s,
                       connect_timeout_s=settings.connect_timeout_s, max_redirects=settings.max_redirects,
                       user_agent=settings.user_agent)


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class PageReader:
    """Fetch and extract article pages within every limit; shared by ingest and `newswatch fetch`."""

    def __init__(self, *, client: httpx.AsyncClient, extractor, settings: IngestSettings,
                 metrics: IngestMetrics | None = None,
                 per_host: Mapping[str, asyncio.Semaphore] | None = None,
                 clock: Callable[[], datetime] = utc_now):
        self.client = client
        self.extractor = extractor
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self.limits = page_limits(settings)
        self._per_host = per_host if per_host is not None else defaultdict(
            lambda: asyncio.Semaphore(settings.per_host))
        self._global = asyncio.Semaphore(settings.page_concurrency)
        self._paused_until: dict[str, float] = {}  # host -> time.monotonic() when pages may go again

    async def read(self, article: Article) -> tuple[Article, PageOutcome]:
        """The article to publish (with its page's text when that worked) and what happened."""
        began = time.monotonic()
        try:
            page, cpu = await self._read(article)
        except (FetchError, FeedRefused, PageRefused) as exc:
            outcome = PageOutcome("skipped" if exc.reason == "host_paused" else "failed", exc.reason,
                                  exc.detail, time.monotonic() - began)
            return article, self.count(outcome)
        enriched = with_page_text(article, page)
        if enriched is None:
            return article, self.count(PageOutcome("skipped", "page_shorter", "the page has less text than the feed",
                                                    time.monotonic() - began, cpu))
        return enriched, self.count(PageOutcome("ok", None, "", time.monotonic() - began, cpu))

    def count(self, outcome: PageOutcome) -> PageOutcome:
        if self.metrics is not None:
            self.metrics.page_fetches.labels(outcome=outcome.outcome, reason=outcome.reason or "none").inc()
            if outcome.extract_cpu_s is not None:
                self.metrics.extract_seconds.observe(outcome.extract_cpu_s)
        return outcome

    async def _read(self, article: Article) -> tuple[PageText, float]:
        url = article.url or ""
        host = (urlsplit(url).hostname or "").lower()
        if self._paused_until.get(host, 0.0) > time.monotonic():
            raise FetchError("host_paused", f"{host} asked for a pause (Retry-After) that has not ended")
        async with self._global, self._per_host[host]:
            response = await fetch_feed(self.client, url, limits=self.limits, accept=ACCEPT_HTML)
        if not response.is_success:
            pause = host_pause_s(response.status, response.retry_after(self.clock()),
                                 self.settings.page_retry_after_max_s)
            if pause:
                self._paused_until[host] = time.monotonic() + pause
            raise FetchError(f"http_{response.status}", f"HTTP {response.status}", status=response.status)
        began = time.monotonic()
        page = await self.extractor.extract(response.content, response.url, content_type=response.content_type,
                                            max_chars=self.settings.max_text_chars,
                                            budget_s=self.settings.extract_budget_s)
        return page, time.monotonic() - began


# --- in the background of the poller ------------------------------------------------------

class PageFetcher:
    """Reads the pages of held articles in background tasks and releases each article to the outbox."""

    def __init__(self, reader: PageReader, store, *, settings: IngestSettings, metrics: IngestMetrics,
                 on_released: Callable[[], None] = lambda: None):
        self.reader = reader
        self.store = store
        self.settings = settings
        self.metrics = metrics
        self.on_released = on_released
        self._tasks: set[asyncio.Task] = set()

    def resume(self) -> int:
        """At start: articles a stopped process held go out with their feed text (read at most once)."""
        released = self.store.release_all_pages()
        if released:
            self.metrics.articles_by_text_source.labels(source="feed").inc(released)
            log_event(log, logging.INFO, "pages_not_refetched", articles=released,
                      detail="held when the last run stopped; published with their feed text")
            self.on_released()
        return released

    def wants(self, mode: str, article: Article) -> bool:
        return wants_page(mode, article, self.settings.full_text_min_chars)

    def start(self, feed_name: str, article: Article) -> asyncio.Task:
        task = asyncio.create_task(self._run(feed_name, article), name=f"page:{article.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def _run(self, feed_name: str, article: Article) -> None:
        began = time.monotonic()
        try:
            async with asyncio.timeout(self.settings.page_wait_s):
                published, outcome = await self.reader.read(article)
        except TimeoutError:
            published = article
            outcome = self.reader.count(PageOutcome("failed", "page_wait", f"no text within page_wait_s "
                                                     f"({self.settings.page_wait_s:g} s)", time.monotonic() - began))
        except asyncio.CancelledError:
            try:
                self._release(article, article)  # stopping: out with the feed text, never held for ever
            except sqlite3.ProgrammingError:
                pass  # the store is already closed: the row stays held and goes out at the next start
            raise
        self._release(article, published)
        if outcome.outcome != "ok":
            log_event(log, logging.WARNING if outcome.outcome == "failed" else logging.INFO, "page_not_used",
                      feed=feed_name, article_id=article.id, url=safe_url(article.url or ""),
                      reason=outcome.reason, detail=outcome.detail[:200], elapsed_s=round(outcome.elapsed_s, 2),
                      published_with="feed text")

    def _release(self, held: Article, published: Article) -> None:
        payload = published.encode() if published is not held else None
        if self.store.release_page(held.id, payload):
            self.metrics.articles_by_text_source.labels(source=published.text_source or "feed").inc()
            self.on_released()

    async def close(self) -> None:
        """Stop every read; their articles go out with the feed text."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        try:
            self.store.release_all_pages()
        except sqlite3.ProgrammingError:
            pass  # the store is already closed: held rows go out at the next start
