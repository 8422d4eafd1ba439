"""Each defence against a hostile feed server, on a real local server, with a healthy feed polled by
the same poller: the hostile poll must end within its limit and the healthy feed stay on schedule."""

from __future__ import annotations

import asyncio
import gzip
import time
from functools import lru_cache

import httpx
import pytest
from aiohttp import web

from newswatch.netguard import guarded_transport

from ingest.feeds_config import FeedConfig
from ingest.poller import PollReport
from ingest.seen import IngestStore
from tests.ingest.conftest import local_settings, make_poller
from tests.ingest.feeds_fixture import EN, entries, rss2

HEALTHY_INTERVAL_S = 1.0
RUN_FOR_S = 4.5
LIMITS = dict(fetch_deadline_s=2.0, max_body_bytes=1024 * 1024, max_redirects=3)


@lru_cache(maxsize=1)
def gzip_bomb() -> bytes:
    return gzip.compress(b"\0" * (256 * 1024 * 1024), compresslevel=9)  # ~250 KB on the wire, 256 MiB inflated


async def bomb_handler(request):
    return web.Response(body=gzip_bomb(), headers={"Content-Encoding": "gzip", "Content-Type": "application/xml"})


async def slow_drip_handler(request):
    response = web.StreamResponse(headers={"Content-Type": "application/xml"})
    await response.prepare(request)
    await response.write(b'<?xml version="1.0"?><rss version="2.0"><channel>')
    for _ in range(600):  # one byte every 100 ms: every read succeeds, the document never ends
        await asyncio.sleep(0.1)
        await response.write(b" ")
    return response


async def redirect_loop_handler(request):
    return web.Response(status=302, headers={"Location": request.path})


ENTITY_BLOWUP = (b'<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY a "' + b"x" * 50_000 + b'">\n]>\n'
                 b'<rss version="2.0"><channel><title>t</title>' + b"<item><title>&a;&a;&a;&a;</title></item>" * 500
                 + b"</channel></rss>")


async def entity_handler(request):
    return web.Response(body=ENTITY_BLOWUP, headers={"Content-Type": "application/xml"})


async def run_poller_with(feed_server, tmp_path, hostile_urls, client=None):
    feed_server.serve_feed("/healthy", rss2("healthy", "en", entries(EN, "http://h.test/n", "h")))
    healthy = FeedConfig(url=feed_server.url("/healthy"), interval=HEALTHY_INTERVAL_S)
    hostile = [FeedConfig(url=url, interval=HEALTHY_INTERVAL_S) for url in hostile_urls]
    settings = local_settings(interval_floor_s=HEALTHY_INTERVAL_S, interval_ceiling_s=HEALTHY_INTERVAL_S, **LIMITS)
    reports: list[PollReport] = []
    store = IngestStore.in_dir(tmp_path)
    poller = make_poller([healthy, *hostile], store, settings, client=client, on_report=reports.append)
    stop = asyncio.Event()
    task = asyncio.create_task(poller.run(stop))
    await asyncio.sleep(RUN_FOR_S)
    stop.set()
    await asyncio.wait_for(task, 5)
    await poller.client.aclose()
    return reports, feed_server.hits_for("/healthy"), store


def assert_healthy_on_schedule(healthy_hits):
    times = [hit.at for hit in healthy_hits]
    assert len(times) >= 3, f"healthy feed polled only {len(times)} times in {RUN_FOR_S} s"
    gaps = [b - a for a, b in zip(times, times[1:])]
    # interval 1 s with +-10 % jitter; 0.4 s of slack for a loaded 2-core machine
    assert max(gaps) < HEALTHY_INTERVAL_S * 1.1 + 0.4, f"healthy feed fell behind: gaps {gaps}"
    assert [hit.status for hit in healthy_hits[1:]] == [304] * (len(healthy_hits) - 1)


@pytest.mark.parametrize("name, handler, reason, limit_s", [
    ("gzip-bomb", bomb_handler, "too_large", 1.5),
    ("slow-drip", slow_drip_handler, "deadline", LIMITS["fetch_deadline_s"] + 0.6),
    ("redirect-loop", redirect_loop_handler, "too_many_redirects", 1.0),
    ("entity-blowup", entity_handler, "entity_declaration", 1.0),
])
async def test_hostile_server_is_cut_off_and_healthy_feed_stays_on_time(feed_server, tmp_path, name, handler,
                                                                       reason, limit_s):
    gzip_bomb()  # built before the clock starts: compressing 256 MiB is the test's cost, not the poll's
    feed_server.route(f"/{name}", handler)
    reports, healthy_hits, store = await run_poller_with(feed_server, tmp_path, [feed_server.url(f"/{name}")])
    hostile = [r for r in reports if r.feed_url.endswith(name)]
    assert hostile, "the hostile feed was never polled"
    for report in hostile:
        assert (report.outcome, report.reason) == ("error", reason)
        assert report.elapsed_s < limit_s, f"{name} took {report.elapsed_s:.2f} s (limit {limit_s} s)"
    if name == "redirect-loop":
        assert len(feed_server.hits_for(f"/{name}")) == len(hostile) * (LIMITS["max_redirects"] + 1)
    assert_healthy_on_schedule(healthy_hits)
    state = store.feed_state(feed_server.url(f"/{name}"))
    assert state.consecutive_failures == len(hostile) and state.last_error.startswith(reason)


async def test_private_addresses_are_refused_at_connect_time(feed_server, tmp_path):
    """The guarded transport refuses loopback, private and metadata targets; only the healthy
    feed's exact origin is mounted on a transport that allows it, so both run on one poller."""
    feed_server.route("/secret", entity_handler)
    port = feed_server.port
    hostile = [f"http://localhost:{port}/secret", f"http://[::ffff:127.0.0.1]:{port}/secret",
               "http://169.254.169.254/latest/meta-data/", "http://100.100.100.200/", "http://10.0.0.1/feed"]
    client = httpx.AsyncClient(transport=guarded_transport(allow_private_networks=False),
                               mounts={f"http://127.0.0.1:{port}": guarded_transport(allow_private_networks=True)},
                               follow_redirects=False)
    started = time.monotonic()
    reports, healthy_hits, _ = await run_poller_with(feed_server, tmp_path, hostile, client=client)
    assert time.monotonic() - started < RUN_FOR_S + 3
    refused = [r for r in reports if r.feed_url in hostile]
    assert {r.feed_url for r in refused} == set(hostile)
    assert {(r.outcome, r.reason) for r in refused} == {("error", "address_refused")}
    assert all(r.elapsed_s < 1.0 for r in refused)
    assert feed_server.hits_for("/secret") == []  # not one byte reached the server behind the guard
    assert_healthy_on_schedule(healthy_hits)


async def test_redirect_to_a_private_address_is_refused(feed_server, tmp_path):
    """A public-looking feed that redirects inward is checked again at the redirect's connect."""
    async def inward(request):
        return web.Response(status=301, headers={"Location": "http://169.254.169.254/latest/meta-data/"})

    feed_server.route("/inward", inward)
    client = httpx.AsyncClient(transport=guarded_transport(allow_private_networks=False),
                               mounts={f"http://127.0.0.1:{feed_server.port}":
                                       guarded_transport(allow_private_networks=True)})
    reports, healthy_hits, _ = await run_poller_with(feed_server, tmp_path, [feed_server.url("/inward")], client)
    inward_reports = [r for r in reports if r.feed_url.endswith("/inward")]
    assert inward_reports and {r.reason for r in inward_reports} == {"address_refused"}
    assert_healthy_on_schedule(healthy_hits)
