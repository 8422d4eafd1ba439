"""One HTTP attempt, and the per-subscription queues that run attempts without blocking each other.

`attempt()` renders the body in the subscription's format, signs the exact bytes with a fresh
timestamp, POSTs it (no redirects, the stage timeout) and reports status or error kind; it never
raises for network trouble and never puts a URL or secret into what it reports.
`after_attempt()` is the pure transition that follows. `DeliveryPool` gives every subscription
its own queue and worker, and bounds concurrent requests per host.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

import httpx
import pydantic

from alerts import formats, retry
from alerts.payload import WebhookBody
from alerts.records import PendingDelivery
from alerts.settings import AlertsSettings
from alerts.signing import sign_headers, signing_key
from alerts.subscriptions import Endpoint, Subscription
from newswatch import __version__
from newswatch.http_headers import parse_retry_after
from newswatch.logs import netloc
from newswatch.netguard import AddressRefused
from newswatch.secrets import redact

USER_AGENT = f"newswatch/{__version__} (webhook)"
_BODY_ADAPTER = pydantic.TypeAdapter(WebhookBody)


@dataclass(frozen=True)
class AttemptResult:
    status: int | None
    error: str | None = None  # an error kind: "timeout", "connect_error", "address_refused", ...
    detail: str | None = None  # a short, redacted description for the DLQ and logs
    retry_after: str | None = None
    elapsed: float = 0.0


def render(pending: PendingDelivery, subscription: Subscription) -> bytes:
    """The bytes to POST: the stored JSON body as is, or its Slack/Discord/Teams rendering."""
    if subscription.format == "json":
        return pending.body.encode("utf-8")
    body = _BODY_ADAPTER.validate_json(pending.body)
    native = formats.FORMATTERS[subscription.format](body)
    return json.dumps(native, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# Most specific first: PoolTimeout is a TimeoutException, RemoteProtocolError a ProtocolError.
_ERROR_KINDS: tuple[tuple[type[Exception], str], ...] = (
    (AddressRefused, "address_refused"),
    (httpx.PoolTimeout, "pool_timeout"),
    (httpx.TimeoutException, "timeout"),
    (httpx.ConnectError, "connect_error"),
    (httpx.ReadError, "read_error"),
    (httpx.WriteError, "write_error"),
    (httpx.RemoteProtocolError, "remote_protocol_error"),
    (httpx.ProtocolError, "protocol_error"),
)


def _error_kind(exc: Exception) -> str:
    """A stable label for a failed request (log field and metric label)."""
    return next((kind for error_type, kind in _ERROR_KINDS if isinstance(exc, error_type)), "request_error")


def _describe(exc: Exception, endpoint: Endpoint) -> str:
    """Exception text without the URL or any secret (httpx messages may quote the URL)."""
    url = endpoint.url.reveal()
    text = str(exc).replace(url, "<url>")
    parts = urlsplit(url)
    # Messages may quote only the path or the query (where tokens live): scrub those too.
    for piece in (f"{parts.path}?{parts.query}" if parts.query else "", parts.query,
                  parts.path if len(parts.path) > 1 else ""):
        if piece:
            text = text.replace(piece, "<url>")
    text = redact(text, endpoint.all_secrets())
    return f"{type(exc).__name__}: {text}"[:300]


async def attempt(client: httpx.AsyncClient, pending: PendingDelivery, subscription: Subscription,
                  endpoint: Endpoint, now: datetime, timeout: float) -> AttemptResult:
    """POST one delivery once, signed for `now`; network trouble becomes an error kind, not an exception."""
    body = render(pending, subscription)
    headers = {"content-type": "application/json", "user-agent": USER_AGENT}
    headers.update({name: value.reveal() for name, value in endpoint.headers.items()})
    if endpoint.secret is not None:
        headers.update(sign_headers(signing_key(endpoint.secret), pending.id, now, body))
    else:  # chat webhooks authenticate by URL; still tell the receiver which delivery this is
        headers["webhook-id"] = pending.id
    started = time.monotonic()
    try:
        response = await client.post(endpoint.url.reveal(), content=body, headers=headers,
                                     timeout=timeout, follow_redirects=False)
        await response.aread()
    except (httpx.HTTPError, AddressRefused) as exc:
        return AttemptResult(None, _error_kind(exc), _describe(exc, endpoint), None, time.monotonic() - started)
    return AttemptResult(response.status_code, None, None, response.headers.get("retry-after"),
                         time.monotonic() - started)


@dataclass(frozen=True)
class Transition:
    """What follows an attempt: the verdict, its reason, and the delivery as it now stands."""

    verdict: retry.Verdict
    reason: str
    pending: PendingDelivery


def after_attempt(pending: PendingDelivery, result: AttemptResult, now: datetime, settings: AlertsSettings,
                  random_unit: float = 0.5) -> Transition:
    """Pure: book the attempt, classify it, and schedule the next one (or give up: "dead")."""
    classified = retry.classify(result.status, result.error)
    booked = pending.model_copy(update={
        "attempts": pending.attempts + 1, "first_attempt_at": pending.first_attempt_at or now,
        "last_attempt_at": now, "last_status": result.status,
        "last_error": result.detail if result.error else (None if result.status and result.status < 300
                                                          else f"HTTP {result.status}")})
    if classified.verdict != "retry":
        return Transition(classified.verdict, classified.reason, booked)
    when = retry.next_attempt_at(booked.attempts, now, settings.retry_schedule, jitter=settings.retry_jitter,
                                 random_unit=random_unit,
                                 retry_after=parse_retry_after(result.retry_after, now),
                                 max_retry_after=settings.max_retry_after)
    if when is None:
        return Transition("dead", "retries_exhausted", booked)
    return Transition("retry", classified.reason, booked.model_copy(update={"next_attempt_at": when}))


def host_of(url: str) -> str:
    """The concurrency key: scheme, host and port (distinct local sinks count as distinct hosts)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{netloc(parts.hostname or '', parts.port or (443 if parts.scheme == 'https' else 80))}"


class DeliveryPool:
    """A queue and a worker per subscription; at most `per_host` requests in flight per host.

    `handle(pending)` does the attempt and its bookkeeping; a slow or dead endpoint only ever
    holds its own subscription's worker and one of its host's slots.
    """

    def __init__(self, handle: Callable[[PendingDelivery], Awaitable[None]], per_host: int,
                 host_for: Callable[[str], str]):
        self._handle = handle
        self._per_host = per_host
        self._host_for = host_for
        self._queues: dict[str, asyncio.Queue[PendingDelivery]] = {}
        self._workers: dict[str, asyncio.Task] = {}
        self._hosts: dict[str, asyncio.Semaphore] = {}
        self._busy = 0
        self._closing = False

    def submit(self, pending: PendingDelivery) -> None:
        name = pending.subscription
        if name not in self._queues:
            self._queues[name] = asyncio.Queue()
            self._workers[name] = asyncio.create_task(self._work(name), name=f"deliver-{name}")
        self._queues[name].put_nowait(pending)

    def queued(self, subscription: str) -> int:
        queue = self._queues.get(subscription)
        return queue.qsize() if queue else 0

    async def _work(self, name: str) -> None:
        queue = self._queues[name]
        host = self._host_for(name)
        semaphore = self._hosts.setdefault(host, asyncio.Semaphore(self._per_host))
        while True:
            pending = await queue.get()
            if self._closing:  # not started: it stays pending in Kafka for the next start
                queue.task_done()
                continue
            self._busy += 1
            try:
                async with semaphore:
                    await self._handle(pending)
            finally:
                self._busy -= 1
                queue.task_done()

    async def close(self, grace: float = 0.0) -> None:
        """Stop the workers, first letting attempts in progress finish for up to `grace` seconds
        (so their outcome is recorded rather than retried after the restart)."""
        self._closing = True
        deadline = asyncio.get_running_loop().time() + grace
        while self._busy and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        for task in self._workers.values():
            task.cancel()
        await asyncio.gather(*self._workers.values(), return_exceptions=True)
