"""Real HTTP receivers on 127.0.0.1 for integration tests, and a harness that runs the dispatcher.

A Receiver answers each request by a plan (attempt number -> status, or None to hang until the
test ends) and records what it got and when, so tests can assert on webhook-ids, signatures and
latency without mocking HTTP.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
from kafka import KafkaProducer
from prometheus_client import CollectorRegistry

from alerts.cli import http_client
from alerts.dispatcher import Dispatcher
from alerts.metrics import AlertMetrics
from alerts.settings import AlertsSettings
from alerts.subscriptions import Endpoint, SubscriptionsFile
from newswatch.kafka_settings import Topics
from newswatch.schemas import Match
from tests.support.kafka import create_topics
from tests.support.waiting import async_wait_until


@dataclass
class Received:
    at: float  # time.monotonic() when the request arrived
    headers: dict[str, str]
    body: bytes
    status: int | None

    def json(self):
        return json.loads(self.body)


Plan = Callable[[int], int | None]


def always(status: int) -> Plan:
    return lambda attempt: status


def fail_first(count: int, status: int = 500) -> Plan:
    return lambda attempt: status if attempt <= count else 200


class Receiver:
    """One HTTP endpoint in a background thread."""

    def __init__(self, plan: Plan = always(200)):
        self.plan = plan
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        self._release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                arrived = time.monotonic()
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                with receiver._lock:
                    status = receiver.plan(len(receiver.requests) + 1)
                    receiver.requests.append(Received(arrived, {k.lower(): v for k, v in self.headers.items()},
                                                      body, status))
                if status is None:
                    receiver._release.wait(60)
                    self.close_connection = True
                    return
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def accepted(self) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.status is not None and 200 <= r.status < 300]

    def close(self) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()


def produce(bootstrap: str, topic: str, matches: list[Match]) -> list[float]:
    """Write Matches keyed by story id, as the processors do; returns each send's monotonic time."""
    create_topics(bootstrap, topic)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        sent = []
        for m in matches:
            sent.append(time.monotonic())
            producer.send(topic, key=m.story_id.encode(), value=m.encode())
        producer.flush(30)
        return sent
    finally:
        producer.close()


@dataclass
class Running:
    dispatcher: Dispatcher
    registry: CollectorRegistry
    topics: Topics
    extra: dict = field(default_factory=dict)


@asynccontextmanager
async def running_dispatcher(bootstrap: str, topics: Topics, settings: AlertsSettings,
                             subscriptions: SubscriptionsFile, endpoints: dict[str, Endpoint], clock=None,
                             poll_silences=None):
    """The real Dispatcher on the real broker, in this event loop, stopped cleanly on exit."""
    registry = CollectorRegistry()
    stop = asyncio.Event()
    # One partition, so the tests' matches arrive in the order produced (the dispatcher itself
    # would create the topic with kafka.partitions when it is missing).
    await asyncio.to_thread(create_topics, bootstrap, topics.matches)
    kwargs = {"clock": clock} if clock is not None else {}
    if poll_silences is not None:
        kwargs["poll_silences"] = poll_silences
    dispatcher = Dispatcher(settings=settings, subscriptions=subscriptions, endpoints=endpoints, topics=topics,
                            bootstrap=bootstrap,
                            client_factory=partial(http_client, settings, httpx.create_ssl_context()),
                            metrics=AlertMetrics(registry), **kwargs)
    task = asyncio.create_task(dispatcher.run(stop))
    ready = asyncio.create_task(dispatcher.ready.wait())
    await asyncio.wait([task, ready], timeout=60, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()
    await async_wait_until(dispatcher.ready.is_set, 60, "dispatcher ready")
    try:
        yield Running(dispatcher, registry, topics)
    finally:
        stop.set()
        await asyncio.wait_for(task, settings.timeout + 30)
