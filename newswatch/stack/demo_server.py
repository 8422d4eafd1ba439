"""A local HTTP server for the demo feed files, so `newswatch up` works without the internet.

It serves the files of one folder (re-read on every request, so an edited feed shows up at
the next poll) with ETag and Last-Modified, answers conditional GETs with 304 as a polite
news site does, and reports every response through a callback (the end-to-end test uses
that record to time feed-to-alert latency).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import format_datetime, parsedate_to_datetime
from datetime import datetime, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit


@dataclass(frozen=True)
class Served:
    """One response of the demo server."""

    time: float  # time.time() when the response was sent
    path: str
    status: int
    etag: str | None = None


def entity_tag(content: bytes) -> str:
    """A strong ETag for a file's bytes (the same bytes always give the same tag)."""
    return '"' + hashlib.sha256(content).hexdigest()[:20] + '"'


def http_date(mtime: float) -> str:
    return format_datetime(datetime.fromtimestamp(int(mtime), tz=timezone.utc), usegmt=True)


def is_not_modified(etag: str, mtime: float, if_none_match: str | None, if_modified_since: str | None) -> bool:
    """RFC 9110 section 13.2.2: If-None-Match decides when present; else If-Modified-Since."""
    if if_none_match is not None:
        tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
        return "*" in tags or etag in tags
    if if_modified_since is not None:
        try:
            since = parsedate_to_datetime(if_modified_since)
        except (TypeError, ValueError):
            return False
        if since.tzinfo is None:
            return False
        return int(mtime) <= since.timestamp()
    return False


def content_type(content: bytes, name: str) -> str:
    """Atom or RSS by the root element; HTML pages as HTML; anything else as XML or plain bytes."""
    head = content[:2048]
    if name.endswith(".xml"):
        if b"<feed" in head:
            return "application/atom+xml; charset=utf-8"
        if b"<rss" in head or b"<rdf:RDF" in head:
            return "application/rss+xml; charset=utf-8"
        return "application/xml; charset=utf-8"
    if name.endswith(".json"):
        return "application/json"
    if name.endswith(".html"):  # article pages served beside the feeds that link to them
        return "text/html; charset=utf-8"
    return "application/octet-stream"


def resolve_file(root: Path, url_path: str) -> Path | None:
    """The file in `root` a request path names, or None (no sub-folders, no escaping the folder)."""
    name = unquote(urlsplit(url_path).path).lstrip("/")
    if not name or "/" in name or "\\" in name or name.startswith("."):
        return None
    candidate = root / name
    return candidate if candidate.is_file() else None


class DemoFeedServer:
    """Serves `root` on 127.0.0.1:`port` in a background thread until `stop()`."""

    def __init__(self, root: Path, port: int, host: str = "127.0.0.1",
                 on_served: Callable[[Served], None] = lambda _served: None):
        self.root = Path(root)
        self.on_served = on_served
        self._httpd = ThreadingHTTPServer((host, port), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://{self._httpd.server_address[0]}:{self.port}/"

    def start(self) -> "DemoFeedServer":
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="demo-feed-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _handler_class(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "newswatch-demo"
            protocol_version = "HTTP/1.1"

            def do_HEAD(self) -> None:
                self._respond(send_body=False)

            def do_GET(self) -> None:
                self._respond(send_body=True)

            def _respond(self, send_body: bool) -> None:
                file = resolve_file(server.root, self.path)
                if file is None:
                    self._send(HTTPStatus.NOT_FOUND, b"not found\n", {"Content-Type": "text/plain"}, send_body)
                    return
                content = file.read_bytes()
                mtime = file.stat().st_mtime
                etag = entity_tag(content)
                headers = {"ETag": etag, "Last-Modified": http_date(mtime), "Cache-Control": "no-cache"}
                if is_not_modified(etag, mtime, self.headers.get("If-None-Match"),
                                   self.headers.get("If-Modified-Since")):
                    self._send(HTTPStatus.NOT_MODIFIED, b"", headers, False, etag)
                    return
                headers["Content-Type"] = content_type(content, file.name)
                self._send(HTTPStatus.OK, content, headers, send_body, etag)

            def _send(self, status: HTTPStatus, body: bytes, headers: dict[str, str], send_body: bool,
                      etag: str | None = None) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                if status != HTTPStatus.NOT_MODIFIED:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if send_body and body:
                    self.wfile.write(body)
                self.wfile.flush()
                server.on_served(Served(time.time(), urlsplit(self.path).path, int(status), etag))

            def log_message(self, format: str, *args) -> None:  # noqa: A002 - the stdlib's name
                pass  # responses are reported through on_served, not printed

        return Handler
