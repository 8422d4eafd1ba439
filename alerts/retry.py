"""When to try a delivery again, and what an HTTP outcome means: pure functions, no clock inside.

    classify(status, error)  2xx -> "delivered"; 408, 429, 5xx, timeouts, connection errors -> "retry";
                             410 -> "disable" (the endpoint is gone: stop sending, say so loudly);
                             any other 4xx, 3xx (redirects are not followed), refused addresses -> "dead"
    next_attempt_at(...)     the schedule (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h by default), each delay
                             jittered by up to ±`jitter`, never sooner than the receiver's Retry-After;
                             None once the schedule is spent (the delivery goes to the DLQ).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Literal

Verdict = Literal["delivered", "retry", "disable", "dead"]

# Transport failures a later attempt can cure (names of the error kinds deliver.py reports).
RETRYABLE_ERRORS = frozenset({"timeout", "connect_error", "read_error", "write_error", "protocol_error",
                              "remote_protocol_error", "pool_timeout"})


@dataclass(frozen=True)
class Classification:
    verdict: Verdict
    reason: str  # a metric label and log field: "http_2xx", "http_503", "timeout", ...


def classify(status: int | None, error: str | None = None) -> Classification:
    """What an attempt's outcome means (rules in the module docstring)."""
    if status is None:
        kind = error or "unknown_error"
        return Classification("retry" if kind in RETRYABLE_ERRORS else "dead", kind)
    if 200 <= status < 300:
        return Classification("delivered", "http_2xx")
    reason = f"http_{status}"
    if status == 410:
        return Classification("disable", reason)
    if status in (408, 429) or status >= 500:
        return Classification("retry", reason)
    return Classification("dead", reason)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds a `Retry-After` header asks us to wait (delta-seconds or HTTP date); None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - now).total_seconds())


def next_attempt_at(attempts_made: int, now: datetime, schedule: tuple[float, ...], *, jitter: float = 0.0,
                    random_unit: float = 0.5, retry_after: float | None = None,
                    max_retry_after: float = 36000.0) -> datetime | None:
    """When attempt number `attempts_made + 1` should run, or None when the retries are spent.

    `random_unit` in [0, 1) picks the jitter (0.5 = none), so callers pass `random.random()`
    and tests pass a constant.
    """
    retry_index = attempts_made - 1  # the first attempt is not a retry
    if retry_index >= len(schedule):
        return None
    delay = schedule[retry_index] * (1.0 + jitter * (2.0 * random_unit - 1.0))
    if retry_after is not None:
        delay = max(delay, min(retry_after, max_retry_after))
    return now + timedelta(seconds=delay)
