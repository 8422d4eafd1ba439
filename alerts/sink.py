"""`newswatch sink`: a local webhook receiver for trying newswatch out and for tests.

It verifies every request with the official Standard Webhooks library (401 on a bad or stale
signature), prints each alert readably, and appends it to a JSON-lines file. Receivers should
dedupe on `webhook-id`; the sink marks repeats as duplicates instead of printing them again.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TextIO

import click
from standardwebhooks.webhooks import WebhookVerificationError

from alerts.signing import signing_key, verify
from newswatch.logs import log_event, setup_logging
from newswatch.schemas import dumps
from newswatch.secrets import secret_from_env

log = logging.getLogger("newswatch.sink")
MAX_BODY = 1_000_000


def describe(body: dict[str, Any]) -> str:
    """A few readable lines for one alert or digest."""
    kind = body.get("type")
    if kind == "newswatch.digest":
        lines = [f"DIGEST {body.get('subscription')}: {body.get('count')} alerts held by the throttle"]
        lines += [f"  - {a.get('title')} [{', '.join(a.get('topics', []))}] {a.get('url') or ''}".rstrip()
                  for a in body.get("alerts", [])]
        return "\n".join(lines)
    article = body.get("article") or {}
    topics = body.get("topics") or []
    terms = sorted({e.get("term") for t in topics for e in t.get("evidence", []) if e.get("term")})
    # The other publications: not the article shown above, nor another entry of its own source.
    sources = sorted({s.get("source") for s in body.get("sources", []) if s.get("source")
                      and s.get("article_id") != article.get("id") and s.get("source") != article.get("source")})
    label = {"first": "ALERT", "changed": "UPDATE", "test": "TEST"}.get(body.get("reason"), "ALERT")
    return "\n".join([
        f"{label} {body.get('subscription')} · story {body.get('story_id')} · {body.get('sources_count')} source(s)",
        f"  title:   {article.get('title')}",
        "  topics:  " + (", ".join(f"{t.get('title')} ({t.get('severity')}, {t.get('score')})" for t in topics) or "-"),
        "  terms:   " + (", ".join(terms) or "-"),
        f"  source:  {article.get('source') or '-'} · {article.get('lang') or '?'} · {article.get('published_at') or '-'}"
        + (f" · also: {', '.join(sources)}" if sources else ""),
        f"  link:    {article.get('url') or '-'}",
    ] + (["  (evidence truncated to fit 20 kB)"] if body.get("truncated") else []))


class SinkServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], key: bytes, out: TextIO | None, echo: Callable[[str], None]):
        super().__init__(address, _Handler)
        self.key = key
        self.out = out
        self.echo = echo
        self.seen: set[str] = set()
        self.lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    server: SinkServer

    def log_message(self, format: str, *args) -> None:  # the sink prints alerts, not access logs
        pass

    def _answer(self, status: int, message: str) -> None:
        data = (json.dumps({"status": status, "message": message}) + "\n").encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length > MAX_BODY:
            return self._answer(413, "body too large")
        raw = self.rfile.read(length)
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            body = verify(self.server.key, raw, headers)
        except WebhookVerificationError as exc:
            log_event(log, logging.WARNING, "sink_rejected", reason=str(exc), webhook_id=headers.get("webhook-id", "-"))
            return self._answer(401, f"signature verification failed: {exc}")
        except (ValueError, UnicodeDecodeError) as exc:
            return self._answer(400, f"body is not JSON: {exc}")
        msg_id = headers["webhook-id"]
        with self.server.lock:
            duplicate = msg_id in self.server.seen
            self.server.seen.add(msg_id)
            received = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            if duplicate:
                self.server.echo(f"(duplicate {msg_id} ignored)")
            else:
                self.server.echo(f"[{received}] " + describe(body) if isinstance(body, dict) else str(body))
            if self.server.out is not None:
                self.server.out.write(dumps({"received_at": received, "webhook_id": msg_id,
                                             "duplicate": duplicate, "body": body}) + "\n")
                self.server.out.flush()
        self._answer(200, "duplicate" if duplicate else "ok")


@click.command("sink")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8787, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=Path("alerts.jsonl"), show_default=True,
              help="JSON-lines file the verified alerts are appended to")
@click.option("--secret-env", default="NEWSWATCH_SINK_SECRET", show_default=True,
              help="environment variable holding the signing secret (whsec_... or plain text)")
def sink(host: str, port: int, out: Path, secret_env: str) -> None:
    """Receive, verify and print newswatch webhooks (a local stand-in for a real subscriber)."""
    setup_logging("INFO")
    key = signing_key(secret_from_env(secret_env, "the sink's signing secret"))
    with out.open("a", encoding="utf-8") as handle:
        server = SinkServer((host, port), key, handle, lambda text: click.echo(text))
        # SIGTERM ends serve_forever like Ctrl-C does, so both exit 0 after closing the socket.
        signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
        log_event(log, logging.INFO, "sink_started", host=host, port=server.server_address[1], out=str(out),
                  secret_env=secret_env)
        try:
            server.serve_forever(poll_interval=0.2)
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
    log_event(log, logging.INFO, "sink_stopped")
    sys.stdout.flush()
