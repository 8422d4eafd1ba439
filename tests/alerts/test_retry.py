"""Outcome classification and the retry schedule (pure; no clock, no network)."""

from datetime import timedelta

import pytest

from alerts.retry import classify, next_attempt_at, parse_retry_after
from alerts.settings import DEFAULT_RETRY_SCHEDULE
from tests.alerts.factories import T0


@pytest.mark.parametrize("status, error, verdict, reason", [
    (200, None, "delivered", "http_2xx"), (204, None, "delivered", "http_2xx"),
    (500, None, "retry", "http_500"), (503, None, "retry", "http_503"), (408, None, "retry", "http_408"),
    (429, None, "retry", "http_429"), (410, None, "disable", "http_410"), (400, None, "dead", "http_400"),
    (401, None, "dead", "http_401"), (404, None, "dead", "http_404"), (301, None, "dead", "http_301"),
    (None, "timeout", "retry", "timeout"), (None, "connect_error", "retry", "connect_error"),
    (None, "remote_protocol_error", "retry", "remote_protocol_error"),
    (None, "address_refused", "dead", "address_refused"),
])
def test_classify(status, error, verdict, reason):
    result = classify(status, error)
    assert (result.verdict, result.reason) == (verdict, reason)


def test_default_schedule_then_exhausted():
    delays = []
    for attempts_made in range(1, 9):
        when = next_attempt_at(attempts_made, T0, DEFAULT_RETRY_SCHEDULE)
        delays.append(None if when is None else (when - T0).total_seconds())
    assert delays == [5, 300, 1800, 7200, 18000, 36000, 36000, None]


@pytest.mark.parametrize("unit, factor", [(0.0, 0.9), (0.5, 1.0), (0.999999, 1.1)])
def test_jitter_stays_within_its_fraction(unit, factor):
    when = next_attempt_at(2, T0, DEFAULT_RETRY_SCHEDULE, jitter=0.1, random_unit=unit)
    assert (when - T0).total_seconds() == pytest.approx(300 * factor, rel=1e-4)


def test_retry_after_is_honoured_and_capped():
    assert next_attempt_at(1, T0, DEFAULT_RETRY_SCHEDULE, retry_after=120) == T0 + timedelta(seconds=120)
    # a shorter Retry-After never makes us retry sooner than the schedule
    assert next_attempt_at(2, T0, DEFAULT_RETRY_SCHEDULE, retry_after=1) == T0 + timedelta(seconds=300)
    assert next_attempt_at(1, T0, DEFAULT_RETRY_SCHEDULE, retry_after=10**9,
                           max_retry_after=3600) == T0 + timedelta(hours=1)


@pytest.mark.parametrize("header, seconds", [
    ("120", 120.0), (" 7 ", 7.0), ("Sun, 29 Nov 2026 06:02:00 GMT", 120.0), ("Sun, 29 Nov 2026 05:00:00 GMT", 0.0),
    ("soon", None), ("", None), (None, None), ("-5", None),
])
def test_parse_retry_after(header, seconds):
    assert parse_retry_after(header, T0) == seconds
