"""A real HTTP server on 127.0.0.1 for the ingest tests (aiohttp in its own thread and loop).

Routes are set while it runs: `serve_feed(path, body)` answers with ETag/Last-Modified and 304
to a matching conditional GET; `route(path, handler)` installs any aiohttp handler (the hostile
ones). Every request is logged with its time, path, headers and the status sent.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Hit:
    at: float
    path: str
    headers: dict
    status: int | None = None


@dataclass
class StaticFeed:
    body: bytes
    etag: bool = True
    last_modified: str | None = "Sat, 28 Nov 2026 09:00:00 GMT"
    content_type: str = "application/xml; charset=utf-8"
    extra_headers: dict = field(default_factory=dict)


class FeedServer:
    def __init__(self, host: str = "127.0.0.1"):
        self.host = host  # any 127.0.0.x: several servers are several hosts to the poller
        self.routes: dict[str, object] = {}
        self.hits: list[Hit] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self.port: int | None = None

    def __enter__(self) -> "FeedServer":
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("feed server did not start")
        return self

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, self.host, 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def serve_feed(self, path: str, body: bytes, **options) -> None:
        self.routes[path] = StaticFeed(body, **options)

    def route(self, path: str, handler) -> None:
        self.routes[path] = handler

    def hits_for(self, path: str) -> list[Hit]:
        return [hit for hit in list(self.hits) if hit.path == path]

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        hit = Hit(time.monotonic(), request.path, dict(request.headers))
        self.hits.append(hit)
        target = self.routes.get(request.path)
        if target is None:
            response = web.Response(status=404, text="no such feed")
        elif isinstance(target, StaticFeed):
            response = self._static(request, target)
        else:
            response = await target(request)
        hit.status = response.status
        return response

    @staticmethod
    def _static(request: web.Request, feed: StaticFeed) -> web.Response:
        etag = '"' + hashlib.sha256(feed.body).hexdigest()[:16] + '"'
        headers = dict(feed.extra_headers)
        if feed.etag:
            headers["ETag"] = etag
        if feed.last_modified:
            headers["Last-Modified"] = feed.last_modified
        if feed.etag and request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers=headers)
        if (not feed.etag and feed.last_modified
                and request.headers.get("If-Modified-Since") == feed.last_modified):
            return web.Response(status=304, headers=headers)
        headers["Content-Type"] = feed.content_type
        return web.Response(body=feed.body, headers=headers)
