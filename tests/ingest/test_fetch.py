"""Fetch logic against httpx.MockTransport (sockets are not the point here; test_defences uses real ones)."""

import gzip
import zlib
from datetime import datetime, timezone

import httpx
import pytest

from ingest.fetch import FetchError, FetchLimits, FetchResponse, Validators, fetch_feed, parse_max_age
from newswatch.http_headers import parse_retry_after

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)
LIMITS = FetchLimits(max_body_bytes=1024 * 1024, deadline_s=5, max_redirects=3, user_agent="test-agent")


class StreamingMockTransport(httpx.MockTransport):
    """MockTransport that leaves the body unread, as a network transport does (the stock one reads it
    eagerly, which would hide how fetch_feed streams and caps the raw bytes)."""

    async def handle_async_request(self, request):
        await request.aread()
        return self.handler(request)


class Chunks(httpx.AsyncByteStream):
    """A body that arrives in 64 KiB pieces (httpx reads `content=` bodies eagerly))."""

    def __init__(self, data: bytes):
        self.data = data

    async def __aiter__(self):
        for start in range(0, len(self.data), 65536):
            yield self.data[start:start + 65536]


def client_for(handler) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=StreamingMockTransport(handler))


async def test_conditional_get_sends_validators_and_304_is_not_modified():
    seen = []

    def handler(request):
        seen.append(request.headers)
        return httpx.Response(304, headers={"Cache-Control": "public, max-age=600"})

    async with client_for(handler) as client:
        response = await fetch_feed(client, "https://feeds.example/rss",
                                    validators=Validators('"abc"', "Sat, 28 Nov 2026 09:00:00 GMT"), limits=LIMITS)
    assert seen[0]["if-none-match"] == '"abc"'
    assert seen[0]["if-modified-since"] == "Sat, 28 Nov 2026 09:00:00 GMT"
    assert seen[0]["user-agent"] == "test-agent" and "gzip" in seen[0]["accept-encoding"]
    assert not response.is_modified and response.content == b"" and response.max_age == 600
    # a 304 without validators keeps the ones we had
    assert response.validators(Validators('"abc"', "x")) == Validators('"abc"', "x")


async def test_200_returns_the_body_and_new_validators():
    def handler(request):
        assert "if-none-match" not in request.headers
        return httpx.Response(200, stream=Chunks(b"<rss/>"), headers={"ETag": 'W/"v2"', "Content-Type": "text/xml"})

    async with client_for(handler) as client:
        response = await fetch_feed(client, "https://feeds.example/rss", limits=LIMITS)
    assert response.is_modified and response.content == b"<rss/>" and response.content_type == "text/xml"
    assert response.validators(Validators('"old"', "old date")) == Validators('W/"v2"', None)


@pytest.mark.parametrize("encoding, encode", [
    ("gzip", gzip.compress),
    ("deflate", zlib.compress),
    ("deflate", lambda data: zlib.compress(data)[2:-4]),  # raw deflate, as some servers send it
    ("identity", lambda data: data),
])
async def test_content_encodings_are_decoded(encoding, encode):
    body = "<rss>новости أخبار news</rss>".encode() * 100

    async with client_for(lambda r: httpx.Response(200, stream=Chunks(encode(body)),
                                                   headers={"Content-Encoding": encoding})) as client:
        response = await fetch_feed(client, "https://feeds.example/rss", limits=LIMITS)
    assert response.content == body


async def test_gzip_bomb_stops_at_the_cap():
    bomb = gzip.compress(b"\0" * (200 * 1024 * 1024), compresslevel=9)  # ~200 KB that inflates to 200 MiB
    async with client_for(lambda r: httpx.Response(200, stream=Chunks(bomb),
                                                   headers={"Content-Encoding": "gzip"})) as c:
        with pytest.raises(FetchError) as caught:
            await fetch_feed(c, "https://feeds.example/bomb", limits=LIMITS)
    assert caught.value.reason == "too_large"


async def test_declared_length_over_the_cap_is_refused_before_reading():
    async with client_for(lambda r: httpx.Response(200, stream=Chunks(b"x" * 10),
                                                   headers={"Content-Length": str(10**9)})) as client:
        with pytest.raises(FetchError) as caught:
            await fetch_feed(client, "https://feeds.example/huge", limits=LIMITS)
    assert caught.value.reason == "too_large"


@pytest.mark.parametrize("encoding", ["br", "gzip, gzip", "compress"])
async def test_encodings_not_asked_for_are_refused(encoding):
    async with client_for(lambda r: httpx.Response(200, stream=Chunks(b"x"),
                                                   headers={"Content-Encoding": encoding})) as c:
        with pytest.raises(FetchError) as caught:
            await fetch_feed(c, "https://feeds.example/x", limits=LIMITS)
    assert caught.value.reason == "unsupported_encoding"


async def test_redirects_are_followed_up_to_the_limit_and_validators_stay_on_origin():
    requests = []

    def handler(request):
        requests.append(request)
        hops = {"/a": "/b", "/b": "https://mirror.example/c", "/c": "/d"}
        if request.url.path in hops:
            return httpx.Response(301, headers={"Location": hops[request.url.path]})
        return httpx.Response(200, stream=Chunks(b"<rss/>"))

    async with client_for(handler) as client:
        response = await fetch_feed(client, "https://feeds.example/a", validators=Validators('"e"'), limits=LIMITS)
    assert response.url == "https://mirror.example/d" and len(response.redirects) == 3
    assert [("if-none-match" in r.headers) for r in requests] == [True, True, False, False]


@pytest.mark.parametrize("statuses, moved", [
    ((301,), True), ((308, 301), True), ((301, 302), False), ((307,), False), ((), False)])
async def test_a_feed_has_moved_only_when_every_redirect_was_permanent(statuses, moved):
    def handler(request):
        hop = int(request.url.path.strip("/") or 0)
        if hop < len(statuses):
            return httpx.Response(statuses[hop], headers={"Location": f"/{hop + 1}"})
        return httpx.Response(200, stream=Chunks(b"<rss/>"))

    async with client_for(handler) as client:
        response = await fetch_feed(client, "https://feeds.example/0", limits=LIMITS)
    assert response.moved_to == (f"https://feeds.example/{len(statuses)}" if moved else None)


async def test_redirect_loop_is_cut_after_max_redirects():
    count = 0

    def handler(request):
        nonlocal count
        count += 1
        return httpx.Response(302, headers={"Location": request.url.path})

    async with client_for(handler) as client:
        with pytest.raises(FetchError) as caught:
            await fetch_feed(client, "https://feeds.example/loop", limits=LIMITS)
    assert caught.value.reason == "too_many_redirects" and count == LIMITS.max_redirects + 1


@pytest.mark.parametrize("target", ["file:///etc/passwd", "ftp://feeds.example/x", "gopher://x/"])
async def test_redirect_to_other_schemes_is_refused(target):
    async with client_for(lambda r: httpx.Response(302, headers={"Location": target})) as client:
        with pytest.raises(FetchError) as caught:
            await fetch_feed(client, "https://feeds.example/x", limits=LIMITS)
    assert caught.value.reason == "bad_scheme"


async def test_connect_errors_become_reasons():
    def handler(request):
        raise httpx.ConnectError("connection refused")

    async with client_for(handler) as client:
        with pytest.raises(FetchError) as caught:
            await fetch_feed(client, "https://feeds.example/x", limits=LIMITS)
    assert caught.value.reason == "connect_error"


async def test_error_statuses_are_answers_with_retry_after():
    async with client_for(lambda r: httpx.Response(429, headers={"Retry-After": "120"},
                                                   stream=Chunks(b"slow down"))) as c:
        response = await fetch_feed(c, "https://feeds.example/x", limits=LIMITS)
    assert response.is_rate_limited and response.content == b"" and response.retry_after(NOW) == 120


@pytest.mark.parametrize("value, seconds", [
    ("120", 120), ("0", 0), ("Sat, 28 Nov 2026 12:10:00 GMT", 600), ("Sat, 28 Nov 2026 11:00:00 GMT", 0),
    ("soon", None), ("", None), (None, None), ("-5", None),
])
def test_parse_retry_after(value, seconds):
    assert parse_retry_after(value, NOW) == seconds


@pytest.mark.parametrize("value, seconds", [
    ("max-age=300", 300), ("public, max-age=60, must-revalidate", 60), ('max-age="90"', 90),
    ("s-maxage=10", None), ("no-cache", None), (None, None),
])
def test_parse_max_age(value, seconds):
    assert parse_max_age(value) == seconds


def test_response_questions():
    response = FetchResponse("u", 503, {"retry-after": "30"})
    assert response.is_rate_limited and not response.is_success and response.is_modified
