"""The poller's decisions with fakes: MockTransport for HTTP, a fake clock, a fixed random draw."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import httpx

from ingest.feeds_config import FeedConfig
from ingest.metrics import IngestMetrics
from ingest.seen import IngestStore
from tests.ingest.conftest import local_settings, make_poller
from tests.ingest.feeds_fixture import EN, entries, rss2
from tests.ingest.test_fetch import Chunks
from tests.support.waiting import async_wait_until

T0 = datetime(2026, 11, 29, 1, 0, tzinfo=timezone.utc)


class FakeClock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def poller_for(handler, tmp_path, feeds, clock, **settings):
    client = httpx.AsyncClient(transport=_Streaming(handler))
    store = IngestStore.in_dir(tmp_path)
    metrics = IngestMetrics()
    settings = local_settings(interval_floor_s=60, interval_ceiling_s=3600, **settings)
    return make_poller(feeds, store, settings, client=client, metrics=metrics, clock=clock, rand=lambda: 0.5), store


class _Streaming(httpx.MockTransport):
    async def handle_async_request(self, request):
        return self.handler(request)


def feed_body(n=3) -> bytes:
    return rss2("x", "en", entries(EN[:n], "http://a.test/n", "a"), ttl_minutes=None)


async def test_retry_after_on_503_is_a_floor_and_failures_are_counted(tmp_path, caplog):
    caplog.set_level("INFO", logger="ingest")
    clock = FakeClock(T0)
    feed = FeedConfig(url="https://feeds.example/rss", interval=300)
    poller, store = poller_for(lambda r: httpx.Response(503, headers={"Retry-After": "7200"}), tmp_path, [feed], clock)
    report = await poller.poll_feed(feed)
    assert (report.outcome, report.reason, report.status) == ("error", "http_503", 503)
    assert report.next_poll_at == T0 + timedelta(seconds=7200)
    state = store.feed_state(feed.url)
    assert state.consecutive_failures == 1 and state.last_error.startswith("http_503")
    assert poller.metrics.feed_errors.labels(reason="http_503")._value.get() == 1
    assert poller.metrics.feeds_failing._value.get() == 1
    [line] = [r for r in caplog.records if r.name == "ingest.poller"]  # one clear line per failure
    assert line.getMessage() == "feed_failed"
    assert line.fields["reason"] == "http_503" and line.fields["feed_url"] == feed.url
    assert line.fields["next_poll_at"] == "2026-11-29T03:00:00+00:00"


async def test_errors_back_off_exponentially_then_success_resets(tmp_path):
    clock = FakeClock(T0)
    answers = iter([httpx.Response(500)] * 3 + [httpx.Response(200, stream=Chunks(feed_body()))])
    feed = FeedConfig(url="https://feeds.example/rss", interval=300)
    poller, store = poller_for(lambda r: next(answers), tmp_path, [feed], clock)
    delays = []
    for _ in range(3):
        report = await poller.poll_feed(feed)
        delays.append((report.next_poll_at - clock.now).total_seconds())
    assert delays == [300 * 0.75, 600 * 0.75, 1200 * 0.75]  # rand 0.5 -> 75 % of the doubled wait
    report = await poller.poll_feed(feed)
    assert (report.outcome, report.queued) == ("new", 3)
    state = store.feed_state(feed.url)
    assert state.consecutive_failures == 0 and state.last_error is None and state.last_success_at == T0


async def test_ttl_and_max_age_hold_the_next_poll_back(tmp_path):
    clock = FakeClock(T0)
    body = rss2("x", "en", entries(EN, "http://a.test/n", "a"), ttl_minutes=60)
    feed = FeedConfig(url="https://feeds.example/rss", interval=300)
    poller, _ = poller_for(lambda r: httpx.Response(200, stream=Chunks(body), headers={"Cache-Control": "max-age=900"}),
                           tmp_path, [feed], clock)
    report = await poller.poll_feed(feed)
    assert report.next_poll_at == T0 + timedelta(seconds=3600)  # ttl 60 min beats max-age 15 min


async def test_interval_adapts_to_publishing_rate(tmp_path):
    clock = FakeClock(T0)
    counter = iter(range(1, 100))

    def handler(request):
        n = next(counter)  # every poll carries one more entry
        texts = [(f"story {i}", "<p>x</p>") for i in range(n)]
        return httpx.Response(200, stream=Chunks(rss2("x", "en", entries(texts, "http://a.test/n", "a"))))

    feed = FeedConfig(url="https://feeds.example/rss", interval=300)
    poller, store = poller_for(handler, tmp_path, [feed], clock)
    intervals = []
    for _ in range(4):
        await poller.poll_feed(feed)
        intervals.append(store.feed_state(feed.url).interval_s)
    assert intervals == [225, 168.75, 126.5625, 94.921875]


async def test_per_host_limit_caps_concurrent_fetches(tmp_path):
    in_flight = peak = 0

    async def handler(request):
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.05)
        in_flight -= 1
        return httpx.Response(304)

    class AsyncStreaming(httpx.MockTransport):
        async def handle_async_request(self, request):
            return await self.handler(request)

    feeds = [FeedConfig(url=f"https://same.example/{i}") for i in range(12)]
    store = IngestStore.in_dir(tmp_path)
    settings = local_settings(per_host=3, concurrency=10)
    poller = make_poller(feeds, store, settings, client=httpx.AsyncClient(transport=AsyncStreaming(handler)))
    reports = await poller.poll_all()
    assert {r.outcome for r in reports} == {"not_modified"} and peak == 3


async def test_a_permanently_moved_feed_is_polled_and_reported_once(tmp_path, caplog):
    caplog.set_level("WARNING", logger="ingest")
    body = rss2("Desk", "en", entries(EN, "http://news.example.test/en", "en-"))

    def handler(request):
        if request.url.path == "/old.rss":
            return httpx.Response(301, headers={"Location": "/new.rss"})
        if request.url.path == "/tmp.rss":
            return httpx.Response(302, headers={"Location": "/new.rss"})
        if request.url.path == "/dead.rss":
            return httpx.Response(301, headers={"Location": "/gone.rss"})
        if request.url.path == "/gone.rss":
            return httpx.Response(404)
        return httpx.Response(200, stream=Chunks(body), headers={"Content-Type": "application/rss+xml"})

    moved, temporary = FeedConfig(url="https://feeds.example/old.rss"), FeedConfig(url="https://feeds.example/tmp.rss")
    dead = FeedConfig(url="https://feeds.example/dead.rss")  # moved to a url that fails: no advice
    clock = FakeClock(T0)
    poller, _ = poller_for(handler, tmp_path, [moved, temporary, dead], clock)
    outcomes = []
    for _ in range(2):
        outcomes += [(await poller.poll_feed(feed)).outcome for feed in (moved, temporary, dead)]
        clock.now += timedelta(hours=2)
    assert outcomes[0] == "new" and outcomes[3] in {"unchanged", "not_modified"}  # the move loses nothing
    warnings = [r for r in caplog.records if r.getMessage() == "feed_moved_permanently"]
    assert len(warnings) == 1
    assert warnings[0].fields["feed_url"] == moved.url and warnings[0].fields["moved_to"] == "https://feeds.example/new.rss"


async def test_credentials_in_feed_urls_never_reach_logs_or_the_state_file(tmp_path, caplog):
    caplog.set_level("INFO", logger="ingest")
    url = "https://reader:s3cr3t-pass@feeds.example/rss?api_key=TOPSECRET"

    def handler(request):
        return httpx.Response(302, headers={"Location": "/rss?api_key=TOPSECRET&n=" + request.url.params.get("n", "")})

    feed = FeedConfig(url=url)
    poller, store = poller_for(handler, tmp_path, [feed], FakeClock(T0))
    report = await poller.poll_feed(feed)
    assert report.reason == "too_many_redirects"
    logged = " ".join(f"{r.getMessage()} {r.fields}" for r in caplog.records)
    stored = str(store.feed_state(url))
    for secret in ("s3cr3t-pass", "TOPSECRET"):
        assert secret not in logged and secret not in stored.replace(url, "")


async def test_a_restarted_poller_waits_for_the_remembered_next_poll(tmp_path):
    hits = []

    def handler(request):
        hits.append(request.url)
        return httpx.Response(304)

    feed = FeedConfig(url="https://feeds.example/rss", interval=300)
    clock = FakeClock(datetime.now(timezone.utc))  # run() sleeps in real time, so start the fake clock at now
    poller, _ = poller_for(handler, tmp_path, [feed], clock)
    await poller.poll_feed(feed)
    assert len(hits) == 1
    restarted, _ = poller_for(handler, tmp_path, [feed], clock)  # same state folder, same moment
    stop = asyncio.Event()
    task = asyncio.create_task(restarted.run(stop))
    await asyncio.sleep(0.5)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert len(hits) == 1  # not polled again before its next_poll_at (about 6 minutes away)
    new_feed = FeedConfig(url="https://feeds.example/other", interval=300)
    fresh, _ = poller_for(handler, tmp_path, [new_feed], clock)
    stop = asyncio.Event()
    task = asyncio.create_task(fresh.run(stop))
    await async_wait_until(lambda: len(hits) == 2, 5, "a feed never polled before was not polled at once")
    stop.set()
    await asyncio.wait_for(task, 5)
