"""The ingest verbs: `newswatch fetch FEED`, `newswatch ingest`, `newswatch feeds`.

Thin: options in, config loaded, the stage's pieces built and handed to each other, errors
turned into one clear line and a non-zero exit (NewswatchError, handled by the main group).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

import click

from newswatch.config import config_path as find_config, load_config
from newswatch.errors import NewswatchError
from newswatch.logs import log_event, safe_url, setup_logging

from ingest.feeds_config import load_feeds
from ingest.fetch import FetchError, fetch_feed
from ingest.metrics import IngestMetrics
from ingest.parse import FeedRefused, parse_feed
from ingest.poller import Poller, build_client, fetch_limits, text_caps
from ingest.seen import STATE_FILENAME, IngestStore
from ingest.settings import IngestSettings

log = logging.getLogger("ingest")
DEFAULT_METRICS_PORT = 9101


class IngestError(NewswatchError):
    """The ingest stage cannot start or run as configured; the message says what to change."""


class FeedUnreadable(IngestError):
    """`newswatch fetch` could not turn FEED into articles; the message names the feed and why."""


def _settings(config_path: Path | None):
    config = load_config(config_path)
    return config, config.ingest


# --- fetch -------------------------------------------------------------------------------

@click.command("fetch")
@click.argument("feed")
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="newswatch.yaml (default: $NEWSWATCH_CONFIG, else seeds/newswatch.yaml); its ingest: limits apply")
@click.option("--allow-private-networks", is_flag=True, default=None,
              help="permit loopback/private addresses (overrides ingest.allow_private_networks)")
@click.option("--as-url", "as_url", default=None, metavar="URL",
              help="read FEED (a file) as if fetched from URL: links resolve and ids form as ingest's would")
@click.option("--full-text", is_flag=True,
              help="fetch the page of each entry whose feed text is short (ingest's full_text: auto) and print "
                   "the article with the page's text, as ingest would publish it")
def fetch(feed: str, config_path: Path | None, allow_private_networks: bool | None, as_url: str | None,
          full_text: bool) -> None:
    """Fetch or read one feed (URL or file) and print its articles as JSON lines, as ingest publishes them."""
    _, settings = _settings(config_path)
    if allow_private_networks is not None:
        settings = settings.model_copy(update={"allow_private_networks": allow_private_networks})
    parsed = read_feed(feed, settings, datetime.now(timezone.utc), as_url=as_url)
    articles, outcomes = parsed.articles, []
    if full_text:
        articles, outcomes = read_pages(articles, settings)
    for article in articles:
        click.echo(article.encode().decode("utf-8"))
    note = f" (recovered from: {parsed.warning})" if parsed.warning else ""
    shown = safe_url(feed) if urlsplit(feed).scheme.lower() in ("http", "https") else feed
    click.echo(f"{len(articles)} article(s) from {shown}{note}", err=True)
    if full_text:
        click.echo(pages_summary(articles, outcomes), err=True)


def read_pages(articles, settings: IngestSettings, mode: str = "auto"):
    """Each article as ingest would publish it with `full_text: mode`: with its page's text when
    the page was wanted and read. Returns (articles, [(article, PageOutcome) for each page tried])."""
    return asyncio.run(_read_pages(list(articles), settings, mode))


async def _read_pages(articles, settings: IngestSettings, mode: str):
    from ingest.pages import PageReader, wants_page
    from ingest.parse_pool import InlineParser

    async with build_client(settings) as client:
        reader = PageReader(client=client, extractor=InlineParser(), settings=settings)

        async def one(article):
            if not wants_page(mode, article, settings.full_text_min_chars):
                return article, None
            try:
                async with asyncio.timeout(settings.page_wait_s):
                    return await reader.read(article)
            except TimeoutError:
                from ingest.pages import PageOutcome
                return article, PageOutcome("failed", "page_wait", f"no text within {settings.page_wait_s:g} s")

        results = await asyncio.gather(*(one(article) for article in articles))
    return [article for article, _ in results], [(a, o) for a, o in results if o is not None]


def pages_summary(articles, outcomes) -> str:
    """One line per page not used, then the count of articles with page and feed text."""
    lines = [f"page not used for {article.id}: {outcome.reason}: {outcome.detail}"
             for article, outcome in outcomes if outcome.outcome != "ok"]
    page = sum(article.text_source == "page" for article in articles)
    lines.append(f"{page} article(s) with page text, {len(articles) - page} with feed text "
                 f"({len(outcomes)} page(s) wanted)")
    return "\n".join(lines)


def read_feed(feed: str, settings: IngestSettings, now: datetime, *, as_url: str | None = None):
    """Fetch (URL) or read (file) one feed and parse it exactly as ingest would; FeedUnreadable on failure.

    Shared by `newswatch fetch` and `newswatch detect`, so both see the articles ingest would publish.
    """
    scheme = urlsplit(feed).scheme.lower()
    if scheme in ("http", "https"):
        content, base_url, content_type = asyncio.run(_download(feed, settings))
        feed_url = feed
    elif scheme in ("", "file") or Path(feed).exists():
        path = Path(urlsplit(feed).path if scheme == "file" else feed)
        try:
            content = path.read_bytes()[:settings.max_body_bytes + 1]
        except OSError as exc:
            raise FeedUnreadable(f"{feed}: cannot read: {exc.strerror or exc}") from None
        if len(content) > settings.max_body_bytes:
            raise FeedUnreadable(f"{feed}: too_large: larger than max_body_bytes ({settings.max_body_bytes})")
        base_url = feed_url = as_url or path.resolve().as_uri()
        content_type = None
    else:
        raise FeedUnreadable(f"{feed}: bad_scheme: only http(s) URLs and local files can be fetched")
    try:
        return parse_feed(content, base_url, fetched_at=now, feed_url=feed_url,
                          content_type=content_type, caps=text_caps(settings))
    except FeedRefused as exc:
        raise FeedUnreadable(f"{feed}: {exc}") from None


async def _download(url: str, settings: IngestSettings) -> tuple[bytes, str, str | None]:
    async with build_client(settings) as client:
        try:
            response = await fetch_feed(client, url, limits=fetch_limits(settings))
        except FetchError as exc:
            raise FeedUnreadable(f"{safe_url(url)}: {exc}") from None
    if not response.is_success:
        raise FeedUnreadable(f"{safe_url(url)}: http_{response.status}: the server answered HTTP {response.status}")
    return response.content, response.url, response.content_type or None


# --- ingest ------------------------------------------------------------------------------

@click.command("ingest")
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="newswatch.yaml (default: $NEWSWATCH_CONFIG, else seeds/newswatch.yaml)")
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=DEFAULT_METRICS_PORT, show_default=True,
              help="serve Prometheus metrics on this port; 0 disables")
def ingest(config_path: Path | None, metrics_port: int) -> None:
    """Poll the configured feeds and publish new articles to Kafka until SIGTERM/SIGINT."""
    setup_logging()
    config, settings = _settings(config_path)
    if config.feeds is None:
        raise IngestError(f"{find_config(config_path)}: no feeds file configured (feeds:)")
    feeds = load_feeds(config.resolve(config.feeds)).enabled
    asyncio.run(run_ingest(config, settings, feeds, metrics_port))


async def run_ingest(config, settings: IngestSettings, feeds, metrics_port: int,
                     stop: asyncio.Event | None = None) -> None:
    """Build the stage (store, metrics, HTTP client, parser pool, publisher, poller) and run it."""
    from ingest.health import FEED_HEALTH_SUFFIX, FeedHealthPublisher, health_of, kafka_health_connector
    from ingest.parse_pool import ParsePool
    from ingest.publish import OutboxPublisher, kafka_connector

    stop = stop or asyncio.Event()
    metrics = IngestMetrics()
    if metrics_port:
        try:
            metrics.serve(metrics_port)
        except OSError as exc:
            raise IngestError(f"cannot serve metrics on port {metrics_port}: {exc.strerror or exc}; "
                              "choose another with --metrics-port (0 disables)") from None
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if settings.shared:
        try:
            await _run_shared(config, settings, feeds, metrics, stop)
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
        return
    store = IngestStore.in_dir(config.resolve(settings.state_dir))
    topic = config.kafka.topics.articles
    bootstrap = config.kafka.bootstrap()
    log_event(log, logging.INFO, "ingest_started", feeds=len(feeds), topic=topic, bootstrap=bootstrap,
              state=str(store.path), metrics_port=metrics_port or "off", pending=store.pending_count())
    parser = ParsePool(settings.parse_workers, settings.parse_budget_s)
    # Pages get their own worker(s): a slow or hostile page never queues a feed's parse.
    extractor = ParsePool(settings.extract_workers, settings.extract_budget_s)
    publisher = OutboxPublisher(store, kafka_connector(bootstrap, topic, partitions=config.kafka.partitions), topic, metrics)
    health_topic = config.kafka.topics.name(FEED_HEALTH_SUFFIX)
    health = FeedHealthPublisher(kafka_health_connector(bootstrap, health_topic), health_topic)
    by_url = {feed.url: feed for feed in feeds}
    try:
        async with build_client(settings) as client:
            poller = None

            def report_health(report) -> None:  # every poll's outcome, to <prefix>feed-health
                state = poller.states.get(report.feed_url) if poller is not None else None
                if state is not None and report.feed_url in by_url:
                    health.note(health_of(by_url[report.feed_url], state, datetime.now(timezone.utc)))

            poller = Poller(feeds, client=client, store=store, parser=parser, metrics=metrics, settings=settings,
                            on_queued=publisher.wake, on_report=report_health, extractor=extractor)
            await asyncio.gather(poller.run(stop), publisher.run(stop), health.run(stop))
    finally:
        parser.close()
        extractor.close()
        pending = store.pending_count()
        store.close()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        log_event(log, logging.INFO, "ingest_stopped", published=publisher.published, pending=pending)


async def _run_shared(config, settings: IngestSettings, feeds, metrics: IngestMetrics, stop: asyncio.Event) -> None:
    """Shared mode (ingest/shared.py): the same pieces, the feeds assigned by the pollers' group."""
    from ingest.parse_pool import ParsePool
    from ingest.shared import run_shared

    parser = ParsePool(settings.parse_workers, settings.parse_budget_s)
    extractor = ParsePool(settings.extract_workers, settings.extract_budget_s)
    published = 0
    try:
        async with build_client(settings) as client:
            published = await run_shared(config, settings, feeds, metrics=metrics, parser=parser,
                                         extractor=extractor, client=client, stop=stop)
    finally:
        parser.close()
        extractor.close()
        log_event(log, logging.INFO, "ingest_stopped", mode="shared", published=published)


# --- feeds -------------------------------------------------------------------------------

@click.command("feeds")
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="newswatch.yaml (default: $NEWSWATCH_CONFIG, else seeds/newswatch.yaml)")
def feeds(config_path: Path | None) -> None:
    """Show each configured feed's health from the state file: last success, failures, last error."""
    config, settings = _settings(config_path)
    if config.feeds is None:
        raise IngestError("no feeds file configured (feeds:)")
    configured = load_feeds(config.resolve(config.feeds)).feeds
    if settings.shared:
        states, pending, where = _shared_states(config)
        click.echo(format_feed_table(configured, states, datetime.now(timezone.utc)))
        click.echo(f"\n{len(configured)} feed(s), {sum(1 for f in configured if states.get(f.url) and states[f.url].consecutive_failures)} failing, "
                   f"{pending} article(s) waiting for Kafka; state: {where}")
        return
    state_file = config.resolve(settings.state_dir) / STATE_FILENAME
    states = {}
    if state_file.exists():
        store = IngestStore(state_file)
        try:
            states = store.feed_states()
            pending = store.pending_count()
        finally:
            store.close()
    else:
        pending = 0
    click.echo(format_feed_table(configured, states, datetime.now(timezone.utc)))
    click.echo(f"\n{len(configured)} feed(s), {sum(1 for f in configured if states.get(f.url) and states[f.url].consecutive_failures)} failing, "
               f"{pending} article(s) waiting for Kafka; state: {state_file}")


def _shared_states(config):
    """Every feed's state as the feed-state topic holds it (shared mode), whichever poller has it."""
    from kafka.errors import KafkaError

    from ingest.shared import read_all_state, state_topic

    topic = state_topic(config.kafka.topics)
    bootstrap = config.kafka.bootstrap()
    try:
        state = read_all_state(bootstrap, topic)
    except KafkaError as exc:
        raise IngestError(f"ingest.shared is on, so feed health is on Kafka, which cannot be read at {bootstrap}: "
                          f"{exc}; is the broker running (`newswatch kafka status`)?") from None
    if state is None:
        return {}, 0, f"topic {topic} (not created yet: no poller has started)"
    return state.feeds, len(state.pending), f"topic {topic} on {bootstrap}"


def _age(when: datetime | None, now: datetime) -> str:
    if when is None:
        return "never"
    seconds = (now - when).total_seconds()
    future = seconds < 0
    seconds = abs(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            text = f"{seconds / size:.0f}{unit}"
            break
    else:
        text = f"{seconds:.0f}s"
    return f"in {text}" if future else f"{text} ago"


def format_feed_table(configured, states, now: datetime) -> str:
    """A fixed-width table of feed health (pure: the states and `now` are passed in)."""
    header = ("FEED", "STATUS", "LAST SUCCESS", "FAILS", "NEXT POLL", "INTERVAL", "ARTICLES", "LAST ERROR")
    rows = [header]
    for feed in configured:
        state = states.get(feed.url)
        if not feed.enabled:
            status = "disabled"
        elif state is None or state.last_outcome is None:
            status = "new"
        elif state.consecutive_failures:
            status = "failing"
        else:
            status = "ok"
        rows.append((
            feed.display_name[:40], status,
            _age(state.last_success_at if state else None, now),
            str(state.consecutive_failures if state else 0),
            _age(state.next_poll_at, now) if state and state.next_poll_at else "-",
            f"{state.interval_s:.0f}s" if state and state.interval_s else f"{feed.interval:.0f}s",
            str(state.articles_total if state else 0),
            (state.last_error or "")[:60] if state else ""))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(fetch())
