"""Article pages for teaser feeds (ingest/pages.py): the pure rules, then the poller on a real
local server with good and hostile pages. Every hostile page must end within its limit, be
logged with its reason, and leave the article published with its feed text; the feed itself
stays on schedule and each page is fetched at most once."""

from __future__ import annotations

import asyncio
import json
import gzip
import logging
import resource
import time
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from xml.sax.saxutils import escape

import httpx
import pytest
from aiohttp import web

from newswatch.netguard import guarded_transport
from newswatch.schemas import Article, FeedRef, decode

from ingest.extract import PageText, extract_page
from ingest.feeds_config import FeedConfig
from ingest.metrics import IngestMetrics
from ingest.pages import host_pause_s, wants_page, with_page_text
from ingest.parse_pool import ParsePool
from ingest.seen import IngestStore
from tests.ingest.conftest import local_settings, make_poller
from tests.support.pages import load_articles, render_page
from tests.support.waiting import async_wait_until

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
STORY = next(a for a in load_articles() if a["id"] == "en-patriot-poland")
TEASER = STORY["paragraphs"][0]


def _article(**changes) -> Article:
    values = dict(id="a1", url="https://news.example.org/a1", title=STORY["title"], text=TEASER, lang="en",
                  fetched_at=NOW, feed=FeedRef(url="https://news.example.org/rss"), text_source="feed")
    values.update(changes)
    return Article(**values)


# --- pure rules --------------------------------------------------------------------------

def test_which_entries_want_their_page():
    short, long = _article(), _article(text="word " * 200)
    assert wants_page("auto", short, 600) and not wants_page("auto", long, 600)
    assert wants_page("always", long, 600)
    assert not wants_page("never", short, 600)
    assert not wants_page("always", _article(url=None), 600)
    assert not wants_page("always", _article(url="ftp://news.example.org/a1"), 600)
    assert not wants_page("auto", short, 0)  # a threshold of 0 turns auto off


def test_page_text_replaces_the_teaser_and_fills_what_the_feed_left_empty():
    page = PageText(text="\n".join(STORY["paragraphs"]), published_at=datetime(2026, 11, 28, tzinfo=timezone.utc),
                    authors=("Helen Marsh",))
    merged = with_page_text(_article(), page)
    assert merged.text == page.text and merged.text_source == "page"
    assert merged.published_at == page.published_at and merged.authors == ("Helen Marsh",)
    kept = with_page_text(_article(published_at=NOW, authors=("Desk",)), page)
    assert kept.published_at == NOW and kept.authors == ("Desk",)  # the feed's own values stay
    assert with_page_text(_article(text="\n".join(STORY["paragraphs"]) + " more"), page) is None


def test_page_text_in_another_script_than_the_declared_language_changes_the_language():
    page = PageText(text="Министр обороны прибыл в Москву для переговоров о поставках зенитных систем. " * 3)
    merged = with_page_text(_article(title="", text="Minister arrives", lang="en"), page)
    assert merged.lang == "ru"
    assert with_page_text(_article(lang=None), PageText(text=" ".join(STORY["paragraphs"]))).lang == "en"


def test_a_rate_limited_host_pauses_for_its_retry_after_within_the_cap():
    assert host_pause_s(429, 120.0, 3600) == 120.0
    assert host_pause_s(503, None, 3600) == 60.0
    assert host_pause_s(429, 10 ** 9, 3600) == 3600
    assert host_pause_s(404, 120.0, 3600) is None and host_pause_s(200, None, 3600) is None


def test_extraction_keeps_the_story_and_reads_date_and_byline():
    page = extract_page(render_page(STORY, "agency").encode(), "https://news.example.org/a1",
                        content_type="text/html; charset=utf-8")
    for paragraph in STORY["paragraphs"]:
        assert paragraph in page.text
    assert "S-400" not in page.text and "cookies" not in page.text
    assert page.published_at == datetime(2026, 11, 28, tzinfo=timezone.utc)
    assert page.authors == ("Helen Marsh",)


# --- on a real server ----------------------------------------------------------------------

@lru_cache(maxsize=1)
def gzip_bomb() -> bytes:
    return gzip.compress(b"<p>" + b"a" * (256 * 1024 * 1024), compresslevel=9)


async def never_ending(request):
    response = web.StreamResponse(headers={"Content-Type": "text/html"})
    await response.prepare(request)
    await response.write(b"<html><body><article><p>")
    for _ in range(6000):  # a little every 10 ms: every read succeeds, the page never ends
        await asyncio.sleep(0.01)
        await response.write(b"word ")
    return response


async def bomb(request):
    return web.Response(body=gzip_bomb(), headers={"Content-Encoding": "gzip", "Content-Type": "text/html"})


async def inward(request):
    return web.Response(status=302, headers={"Location": "http://10.0.0.1/admin"})


async def ten_megabytes(request):
    body = b"<html><body><article>" + b"<p>" + b"filler text " * (10 * 1024 * 1024 // 12) + b"</p></article></body></html>"
    return web.Response(body=body, headers={"Content-Type": "text/html"})  # declared length over the cap


async def ten_megabytes_chunked(request):
    response = web.StreamResponse(headers={"Content-Type": "text/html"})  # no length: the cap while streaming
    await response.prepare(request)
    chunk = b"<p>" + b"filler text " * 10_000 + b"</p>"
    for _ in range(10 * 1024 * 1024 // len(chunk) + 1):
        await response.write(chunk)
    return response


async def nested_divs(request):
    body = ("<html><body>" + "<div>" * 5000 + "<p>" + TEASER + "</p>" + "</div>" * 5000 + "</body></html>").encode()
    return web.Response(body=body, headers={"Content-Type": "text/html"})


async def rate_limited(request):
    return web.Response(status=429, headers={"Retry-After": "120"}, text="slow down")


HOSTILE = {  # path: (handler, reason logged)
    "never-ending": (never_ending, "deadline"),
    "gzip-bomb": (bomb, "too_large"),
    "inward": (inward, "address_refused"),
    "ten-mb": (ten_megabytes, "too_large"),
    "ten-mb-chunked": (ten_megabytes_chunked, "too_large"),
}


def teaser_feed(items: list[tuple[str, str, str]]) -> bytes:
    """RSS with one item per (guid, link, title), each carrying only the teaser."""
    body = "".join(f"<item><title>{escape(title)}</title><link>{escape(link)}</link><guid>{guid}</guid>"
                   f"<description>{escape(TEASER)}</description></item>" for guid, link, title in items)
    return (f"<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>Teasers</title>"
            f"<language>en</language>{body}</channel></rss>").encode()


def _outbox(store: IngestStore) -> dict[str, Article]:
    return {p.article_id: decode(p.payload, Article) for p in store.pending_after(0, 1000)}


def _guarded_client(feed_server) -> httpx.AsyncClient:
    """Private addresses refused everywhere except the test server's own origin."""
    return httpx.AsyncClient(transport=guarded_transport(allow_private_networks=False),
                             mounts={f"http://127.0.0.1:{feed_server.port}": guarded_transport(allow_private_networks=True)},
                             follow_redirects=False)


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def test_a_teaser_feed_publishes_its_articles_with_page_text_once(feed_server, tmp_path):
    feed_server.serve_feed("/page/good", render_page(STORY, "portal").encode(), content_type="text/html; charset=utf-8")
    feed_server.serve_feed("/feed", teaser_feed([("g1", feed_server.url("/page/good"), STORY["title"])]))
    store = IngestStore.in_dir(tmp_path)
    metrics = IngestMetrics()
    poller = make_poller([FeedConfig(url=feed_server.url("/feed"))], store, local_settings(), metrics=metrics)
    await poller.poll_all()
    await async_wait_until(lambda: store.held_count() == 0, 30, "the page never released its article")
    [article] = _outbox(store).values()
    assert article.text_source == "page" and all(p in article.text for p in STORY["paragraphs"])
    assert "Related" not in article.text and "S-400" not in article.text
    assert article.authors == ("Helen Marsh",)  # the feed gave none: the page's byline
    # Polled again (the feed changed): the article is known, its page is not fetched again.
    feed_server.serve_feed("/feed", teaser_feed([("g1", feed_server.url("/page/good"), STORY["title"]),
                                                 ("g2", "mailto:desk@example.org", "Second")]))
    await poller.poll_all()
    await async_wait_until(lambda: store.held_count() == 0, 30, "held")
    assert len(feed_server.hits_for("/page/good")) == 1
    assert metrics.page_fetches.labels(outcome="ok", reason="none")._value.get() == 1
    assert metrics.articles_by_text_source.labels(source="page")._value.get() == 1
    await poller.pages.close()
    await poller.client.aclose()


async def test_full_text_never_publishes_the_teaser_at_once(feed_server, tmp_path):
    feed_server.serve_feed("/page/good", render_page(STORY, "portal").encode(), content_type="text/html")
    feed_server.serve_feed("/feed", teaser_feed([("g1", feed_server.url("/page/good"), STORY["title"])]))
    store = IngestStore.in_dir(tmp_path)
    poller = make_poller([FeedConfig(url=feed_server.url("/feed"), full_text="never")], store, local_settings())
    await poller.poll_all()
    [article] = _outbox(store).values()  # in the outbox straight away, nothing held
    assert article.text == TEASER and article.text_source == "feed" and store.held_count() == 0
    assert feed_server.hits_for("/page/good") == []
    await poller.client.aclose()


@pytest.fixture
async def pool():
    pool = ParsePool(workers=1, budget_s=20, memory_mb=1024)
    # Started (and trafilatura imported) before any clock starts: a worker's start-up on a loaded
    # machine is not the page's time.
    await asyncio.wait_for(asyncio.gather(*map(asyncio.wrap_future, pool._warming)), 120)
    yield pool
    pool.close()


async def test_hostile_pages_are_cut_off_logged_and_the_articles_keep_their_feed_text(feed_server, tmp_path, caplog,
                                                                                    pool):
    gzip_bomb()  # built before the clock starts
    items = []
    for name, (handler, _) in HOSTILE.items():
        feed_server.route(f"/page/{name}", handler)
        items.append((name, feed_server.url(f"/page/{name}"), f"{STORY['title']} ({name})"))
    feed_server.serve_feed("/feed", teaser_feed(items))
    settings = local_settings(page_deadline_s=2.0, page_wait_s=8.0,  # page_max_bytes: the default 5 MiB
                              per_host=8, interval_floor_s=1, interval_ceiling_s=1)
    store = IngestStore.in_dir(tmp_path)
    feed = FeedConfig(url=feed_server.url("/feed"), interval=1)
    poller = make_poller([feed], store, settings, client=_guarded_client(feed_server), parser=pool)
    rss_before = _max_rss_mb()
    caplog.set_level(logging.INFO, logger="ingest.pages")
    stop = asyncio.Event()
    began = time.monotonic()
    running = asyncio.create_task(poller.run(stop))
    await async_wait_until(lambda: len(feed_server.hits_for("/feed")) >= 1 and store.held_count() == 0
                           and len(_outbox(store)) == len(HOSTILE), 20, "hostile pages never released")
    released_after = time.monotonic() - began
    # While the pages were failing the feed kept its own schedule (1 s).
    await async_wait_until(lambda: len(feed_server.hits_for("/feed")) >= 3, 10, "the feed stopped being polled")
    stop.set()
    await asyncio.wait_for(running, 10)
    await poller.client.aclose()
    assert released_after < settings.page_deadline_s + 3, released_after
    assert _max_rss_mb() - rss_before < 100, "a hostile page made the poller's memory grow"
    articles = {a.id: a for a in _outbox(store).values()}
    reasons = {f.article_id: f.reason for f in _logged(caplog)}
    for name, (_, reason) in HOSTILE.items():
        [article] = [a for a in articles.values() if a.title.endswith(f"({name})")]
        assert article.text == TEASER and article.text_source == "feed", name
        assert reasons.get(article.id) == reason, (name, reasons)
        assert len(feed_server.hits_for(f"/page/{name}")) == 1, name  # at most once, even after re-polls


class _Fields:
    def __init__(self, fields):
        self.__dict__.update(fields)


def _logged(caplog, event: str = "page_not_used") -> list[_Fields]:
    """The key=value fields of every `event` line logged."""
    return [_Fields(getattr(r, "fields", {})) for r in caplog.records if r.msg == event]


async def test_a_page_of_5000_nested_divs_is_bounded_and_still_published(feed_server, tmp_path, caplog, pool):
    feed_server.route("/page/nested", nested_divs)
    feed_server.serve_feed("/feed", teaser_feed([("n1", feed_server.url("/page/nested"), STORY["title"])]))
    settings = local_settings(page_wait_s=10.0, extract_budget_s=3.0)
    store = IngestStore.in_dir(tmp_path)
    poller = make_poller([FeedConfig(url=feed_server.url("/feed"))], store, settings, parser=pool)
    caplog.set_level(logging.INFO, logger="ingest.pages")
    began = time.monotonic()
    await poller.poll_all()
    await async_wait_until(lambda: store.held_count() == 0, 20, "nested page never released")
    elapsed = time.monotonic() - began
    await poller.pages.close()
    await poller.client.aclose()
    assert elapsed < settings.extract_budget_s + 3
    [article] = _outbox(store).values()
    # Its only paragraph is the teaser itself: nothing longer than the feed's text is on it.
    assert article.text == TEASER and article.text_source == "feed"
    logged = _logged(caplog)
    assert logged and logged[0].reason in ("page_shorter", "too_deep", "no_text", "extract_timeout")


async def test_a_slow_page_goes_out_with_feed_text_after_page_wait(feed_server, tmp_path, caplog):
    feed_server.route("/page/slow", never_ending)
    feed_server.serve_feed("/feed", teaser_feed([("s1", feed_server.url("/page/slow"), STORY["title"])]))
    settings = local_settings(page_deadline_s=30.0, page_wait_s=1.0)
    store = IngestStore.in_dir(tmp_path)
    poller = make_poller([FeedConfig(url=feed_server.url("/feed"))], store, settings)
    caplog.set_level(logging.INFO, logger="ingest.pages")
    report = (await poller.poll_all())[0]
    assert report.elapsed_s < 1.0, "the poll waited for its page"
    await async_wait_until(lambda: store.held_count() == 0, 10, "page_wait did not release the article")
    [article] = _outbox(store).values()
    assert article.text_source == "feed"
    assert [f.reason for f in _logged(caplog)] == ["page_wait"]
    await poller.pages.close()
    await poller.client.aclose()


async def test_retry_after_pauses_page_fetches_to_that_host(feed_server, tmp_path, caplog):
    feed_server.route("/page/busy1", rate_limited)
    feed_server.route("/page/busy2", rate_limited)
    feed_server.serve_feed("/feed", teaser_feed([("b1", feed_server.url("/page/busy1"), "one")]))
    settings = local_settings()
    store = IngestStore.in_dir(tmp_path)
    poller = make_poller([FeedConfig(url=feed_server.url("/feed"))], store, settings)
    caplog.set_level(logging.INFO, logger="ingest.pages")
    await poller.poll_all()
    await async_wait_until(lambda: store.held_count() == 0, 10, "held")
    feed_server.serve_feed("/feed", teaser_feed([("b1", feed_server.url("/page/busy1"), "one"),
                                                 ("b2", feed_server.url("/page/busy2"), "two")]))
    await poller.poll_all()
    await async_wait_until(lambda: store.held_count() == 0, 10, "held")
    assert feed_server.hits_for("/page/busy2") == []  # the host asked for 120 s
    assert [f.reason for f in _logged(caplog)] == ["http_429", "host_paused"]
    assert len(_outbox(store)) == 2
    await poller.pages.close()
    await poller.client.aclose()


async def test_articles_held_when_ingest_stopped_go_out_with_feed_text_at_the_next_start(feed_server, tmp_path):
    feed_server.route("/page/slow", never_ending)
    feed_server.serve_feed("/feed", teaser_feed([("h1", feed_server.url("/page/slow"), STORY["title"])]))
    store = IngestStore.in_dir(tmp_path)
    poller = make_poller([FeedConfig(url=feed_server.url("/feed"))], store, local_settings(page_wait_s=60))
    await poller.poll_all()
    assert store.held_count() == 1 and store.pending_count() == 1
    await async_wait_until(lambda: feed_server.hits_for("/page/slow"), 10, "the page was never asked for")
    store.close()  # the process dies with the page in flight
    await poller.pages.close()
    await poller.client.aclose()
    reopened = IngestStore.in_dir(tmp_path)
    assert reopened.held_count() == 1
    again = make_poller([FeedConfig(url=feed_server.url("/feed"))], reopened, local_settings())
    assert reopened.held_count() == 0
    [article] = _outbox(reopened).values()
    assert article.text_source == "feed" and article.text == TEASER
    assert len(feed_server.hits_for("/page/slow")) == 1  # not fetched a second time
    await again.client.aclose()


# --- the verbs ------------------------------------------------------------------------------

SEED_LINES = [line.strip() for line in (Path(__file__).resolve().parents[2] / "seeds" / "articles" /
              "rt-arabic-egypt-russia-2plus2.txt").read_text(encoding="utf-8").splitlines() if line.strip()]


def _run_in_thread(*args):
    """The CLI runs its own event loop (asyncio.run): call it from a thread, off this test's loop."""
    from click.testing import CliRunner

    from newswatch.cli import main
    return asyncio.to_thread(CliRunner().invoke, main, list(args))


async def test_fetch_full_text_and_detect_fetch_pages_show_the_difference_the_page_makes(feed_server):
    seed = {"lang": "ar", "title": "لافروف وشويغو يستقبلان نظيريهما المصريين في موسكو", "paragraphs": SEED_LINES}
    feed_server.serve_feed("/page/seed", render_page(seed, "blog").encode(), content_type="text/html; charset=utf-8")
    doc = (f"<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>t</title><language>ar</language>"
           f"<item><title>{escape(seed['title'])}</title><link>{feed_server.url('/page/seed')}</link>"
           f"<guid>seed</guid><description>{escape(SEED_LINES[0])}</description></item></channel></rss>").encode()
    feed_server.serve_feed("/feed", doc)
    url = feed_server.url("/feed")

    plain = await _run_in_thread("fetch", "--allow-private-networks", url)
    full = await _run_in_thread("fetch", "--allow-private-networks", "--full-text", url)
    assert plain.exit_code == 0 and full.exit_code == 0, (plain.output, full.output)
    teaser, page = (decode(r.stdout.strip().encode(), Article) for r in (plain, full))
    assert teaser.text == SEED_LINES[0] and teaser.text_source == "feed"
    assert page.text_source == "page" and SEED_LINES[-3] in page.text
    assert "1 article(s) with page text, 0 with feed text (1 page(s) wanted)" in full.stderr

    without = await _run_in_thread("detect", "--allow-private-networks", url)
    with_pages = await _run_in_thread("detect", "--allow-private-networks", "--fetch-pages", url)
    topics = [{t["topic"] for t in json.loads(r.stdout)["topics"]} for r in (without, with_pages)]
    assert topics == [{"ministerial_visit"}, {"ministerial_visit", "arms_deal", "air_defense_system"}]
