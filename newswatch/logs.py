"""Structured logs: one line per event, `event key=value ...`, with stable snake_case keys.

Values that could carry secrets (URLs with credentials, tokens, query strings) must be
passed through `safe_url()` by the caller; httpx's own request logging is silenced here
because it prints full URLs.
"""

from __future__ import annotations

import logging
import sys
from typing import Any
from urllib.parse import urlsplit, urlunsplit


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None) or {}
        parts = [self.formatTime(record, "%Y-%m-%dT%H:%M:%S"), record.levelname.lower(), record.name,
                 record.getMessage()]
        parts.extend(f"{key}={_quote(value)}" for key, value in fields.items())
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _quote(value: Any) -> str:
    text = str(value)
    if not text or any(ch.isspace() or ch in '"=' for ch in text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


def setup_logging(level: str | int = "INFO", stream=None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx/httpcore log full request URLs (tokens, query strings) at INFO/DEBUG.
    for noisy in ("httpx", "httpcore", "kafka", "aiokafka"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def log_event(logger: logging.Logger, level: int, event: str, **fields: Any) -> None:
    """Log `event` with key=value fields (keys are stable snake_case names)."""
    logger.log(level, event, extra={"fields": fields})


def safe_url(url: str) -> str:
    """A URL fit for logs: no user info, no query string, no fragment."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    try:
        port = parts.port
    except ValueError:
        return "<unparseable url>"
    return urlunsplit((parts.scheme, netloc(parts.hostname or "", port), parts.path, "", ""))


def netloc(host: str, port: int | None = None) -> str:
    """host[:port] as a URL writes it: an IPv6 address in brackets (`[::1]:8080`)."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}" if port else host
