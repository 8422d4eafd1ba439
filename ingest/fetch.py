"""Fetch one feed over HTTP with every defence a hostile server calls for, and describe the answer.

`fetch_feed()` does the I/O: conditional GET, at most N redirects (each target checked again),
a total deadline (slow-drip servers included), the decoded body capped while it streams (gzip
bombs stop at the cap). The `FetchResponse` it returns answers pure questions: `is_modified`,
`validators`, `retry_after(now)`, `max_age`. Anything that is not an answer is a `FetchError`
whose `reason` is a stable snake_case word used in logs and metric labels.
"""

from __future__ import annotations

import asyncio
import re
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit

import httpx

from newswatch.errors import NewswatchError
from newswatch.http_headers import parse_retry_after
from newswatch.logs import safe_url
from newswatch.netguard import AddressRefused

ACCEPT = ("application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9, "
          "application/xml;q=0.8, text/xml;q=0.8, */*;q=0.5")
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
PERMANENT_REDIRECTS = frozenset({301, 308})
_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d+)", re.IGNORECASE)


class FetchError(NewswatchError):
    """A fetch that produced no usable answer; `reason` is stable (logs, metrics), `detail` is for people."""

    def __init__(self, reason: str, detail: str, *, status: int | None = None,
                 retry_after_s: float | None = None):
        self.reason = reason
        self.detail = detail
        self.status = status
        self.retry_after_s = retry_after_s
        super().__init__(f"{reason}: {detail}")


@dataclass(frozen=True)
class Validators:
    """What a server gave us to make the next GET conditional."""

    etag: str | None = None
    last_modified: str | None = None

    def request_headers(self) -> dict[str, str]:
        headers = {}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.last_modified:
            headers["If-Modified-Since"] = self.last_modified
        return headers


@dataclass(frozen=True)
class FetchLimits:
    max_body_bytes: int = 15 * 1024 * 1024
    deadline_s: float = 30.0
    connect_timeout_s: float = 10.0
    max_redirects: int = 3
    user_agent: str = "newswatch"


@dataclass(frozen=True)
class FetchResponse:
    """The final (non-redirect) answer to a feed request; `content` is the decoded body of a 2xx."""

    url: str
    status: int
    headers: dict[str, str]
    content: bytes = b""
    elapsed_s: float = 0.0
    redirects: tuple[str, ...] = field(default=())
    permanent: bool = False  # every redirect on the way was permanent (301/308): the feed has moved

    @property
    def moved_to(self) -> str | None:
        """Where the feed now lives, when it answered only with permanent redirects."""
        return self.redirects[-1] if self.redirects and self.permanent else None

    @property
    def is_modified(self) -> bool:
        return self.status != 304

    @property
    def is_success(self) -> bool:
        return 200 <= self.status < 300

    @property
    def is_rate_limited(self) -> bool:
        return self.status in (429, 503)

    def validators(self, previous: Validators = Validators()) -> Validators:
        """The validators to send next time; a 304 may omit them, then the previous ones stay."""
        etag = self.headers.get("etag") or (previous.etag if not self.is_success else None)
        modified = self.headers.get("last-modified") or (previous.last_modified if not self.is_success else None)
        return Validators(etag=etag, last_modified=modified)

    def retry_after(self, now: datetime) -> float | None:
        """Seconds the server asked us to wait (Retry-After as seconds or an HTTP date), if any."""
        return parse_retry_after(self.headers.get("retry-after"), now)

    @property
    def max_age(self) -> float | None:
        """Cache-Control max-age in seconds, if the server sent one."""
        return parse_max_age(self.headers.get("cache-control"))

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


def parse_max_age(value: str | None) -> float | None:
    if not value:
        return None
    match = _MAX_AGE.search(value)
    return float(match[1]) if match else None


class BodyTooLarge(Exception):
    pass


class BoundedDecoder:
    """Decodes a Content-Encoding chunk by chunk and never produces more than `cap` bytes.

    httpx's own decoders inflate a whole chunk at once (a 64 KiB gzip chunk can become 64 MiB);
    this one asks zlib for at most what is left under the cap.
    """

    def __init__(self, content_encoding: str, cap: int):
        codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
        codings = [c for c in codings if c != "identity"]
        if len(codings) > 1:
            raise FetchError("unsupported_encoding", f"stacked content encodings {content_encoding!r}")
        self.coding = codings[0] if codings else "identity"
        if self.coding in ("gzip", "x-gzip"):
            self._inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
        elif self.coding == "deflate":
            self._inflater = None  # zlib-wrapped or raw: decided on the first bytes
        elif self.coding == "identity":
            self._inflater = None
        else:
            raise FetchError("unsupported_encoding", f"content encoding {self.coding!r} was not asked for")
        self.cap = cap
        self.size = 0
        self._parts: list[bytes] = []

    def _keep(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.cap:
            raise BodyTooLarge()
        if data:
            self._parts.append(data)

    def feed(self, chunk: bytes) -> None:
        if self.coding == "identity":
            self._keep(chunk)
            return
        if self._inflater is None:  # deflate: RFC says zlib stream, many servers send raw deflate
            looks_zlib = len(chunk) >= 2 and (chunk[0] & 0x0F) == 8 and ((chunk[0] << 8) | chunk[1]) % 31 == 0
            self._inflater = zlib.decompressobj(zlib.MAX_WBITS if looks_zlib else -zlib.MAX_WBITS)
        data = chunk
        try:
            while data:
                room = self.cap - self.size + 1  # one byte more than allowed proves the overflow
                out = self._inflater.decompress(data, room)
                self._keep(out)
                data = self._inflater.unconsumed_tail
        except zlib.error as exc:
            raise FetchError("bad_encoding", f"{self.coding} body does not decode: {exc}") from None

    def finish(self) -> bytes:
        if self._inflater is not None:
            try:
                self._keep(self._inflater.flush())
            except zlib.error as exc:
                raise FetchError("bad_encoding", f"{self.coding} body does not decode: {exc}") from None
        return b"".join(self._parts)


def check_scheme(url: str) -> None:
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise FetchError("bad_scheme", f"only http and https are fetched, not {scheme or 'a bare path'!r}")


async def fetch_feed(client: httpx.AsyncClient, url: str, *, validators: Validators = Validators(),
                     limits: FetchLimits = FetchLimits(), accept: str = ACCEPT) -> FetchResponse:
    """GET `url` within `limits`; FetchResponse for any final status, FetchError for everything else.
    (Article pages are fetched with it too, with every limit, asking for HTML in `accept`.)"""
    started = time.monotonic()
    try:
        async with asyncio.timeout(limits.deadline_s):
            return await _fetch(client, url, validators, limits, started, accept)
    except TimeoutError:
        raise FetchError("deadline", f"no complete answer within {limits.deadline_s:g} s") from None
    except AddressRefused as exc:
        raise FetchError("address_refused", str(exc)) from None
    except httpx.TimeoutException as exc:
        raise FetchError("timeout", f"{type(exc).__name__}: {exc or 'timed out'}") from None
    except httpx.ConnectError as exc:
        raise FetchError("connect_error", str(exc) or "connection failed") from None
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        raise FetchError("bad_url", str(exc)) from None
    except httpx.RemoteProtocolError as exc:
        raise FetchError("protocol_error", str(exc) or "malformed HTTP answer") from None
    except httpx.HTTPError as exc:
        raise FetchError("http_error", f"{type(exc).__name__}: {exc}") from None


async def _fetch(client: httpx.AsyncClient, url: str, validators: Validators, limits: FetchLimits,
                 started: float, accept: str) -> FetchResponse:
    redirects: list[str] = []
    permanent = True
    current = url
    while True:
        check_scheme(current)
        headers = {"User-Agent": limits.user_agent, "Accept": accept, "Accept-Encoding": "gzip, deflate"}
        if not redirects or _same_origin(url, current):
            headers.update(validators.request_headers())
        request = client.build_request("GET", current, headers=headers)
        response = await client.send(request, stream=True, follow_redirects=False)
        try:
            if response.status_code in REDIRECT_STATUSES and "location" in response.headers:
                if len(redirects) >= limits.max_redirects:
                    last = safe_url(str(response.url.join(response.headers["location"])))[:200]
                    raise FetchError("too_many_redirects", f"more than {limits.max_redirects} redirects (last to {last})",
                                     status=response.status_code)
                target = str(response.url.join(response.headers["location"]))
                redirects.append(target)
                permanent = permanent and response.status_code in PERMANENT_REDIRECTS
                current = target
                continue
            header_map = {k.lower(): v for k, v in response.headers.items()}
            content = b""
            if 200 <= response.status_code < 300:
                content = await _read_body(response, limits.max_body_bytes)
            return FetchResponse(url=str(response.url), status=response.status_code, headers=header_map,
                                 content=content, elapsed_s=time.monotonic() - started,
                                 redirects=tuple(redirects), permanent=permanent and bool(redirects))
        finally:
            await response.aclose()


def _same_origin(a: str, b: str) -> bool:
    pa, pb = urlsplit(a), urlsplit(b)
    return (pa.scheme, pa.netloc) == (pb.scheme, pb.netloc)


async def _read_body(response: httpx.Response, cap: int) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise FetchError("too_large", f"Content-Length {int(declared)} exceeds the {cap}-byte cap")
    decoder = BoundedDecoder(response.headers.get("content-encoding", ""), cap)
    try:
        async for chunk in response.aiter_raw():
            decoder.feed(chunk)
        return decoder.finish()
    except BodyTooLarge:
        raise FetchError("too_large", f"decoded body exceeds the {cap}-byte cap") from None
