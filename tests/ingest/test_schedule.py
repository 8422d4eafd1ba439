from datetime import datetime, timedelta, timezone

import pytest

from ingest.schedule import ScheduleBounds, adapt_interval, backoff_delay, feed_bounds, next_poll

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)
BOUNDS = ScheduleBounds(floor_s=60, ceiling_s=3600, max_backoff_s=6 * 3600, max_server_delay_s=86400)


@pytest.mark.parametrize("configured, expected", [
    (300, (75, 1200)),
    (60, (60, 240)),       # the global floor wins over configured / 4
    (3600, (900, 3600)),   # the global ceiling wins over configured x 4
    (10, (60, 60)),        # a configured interval below the floor is raised to it
    (86400, (3600, 3600)),
])
def test_feed_bounds(configured, expected):
    assert feed_bounds(configured, BOUNDS) == expected


@pytest.mark.parametrize("current, outcome, expected", [
    (300, "new", 225),
    (300, "unchanged", 375),
    (300, "not_modified", 375),
    (80, "new", 75),          # not below configured / 4
    (1100, "not_modified", 1200),  # not above configured x 4
    (300, "error", 300),      # errors do not adapt the interval
])
def test_adapt_interval(current, outcome, expected):
    assert adapt_interval(current, 300, outcome, BOUNDS) == pytest.approx(expected)


@pytest.mark.parametrize("failures, rand, expected", [
    (1, 0.0, 150), (1, 0.999999, 300),
    (2, 0.0, 300), (3, 0.0, 600), (4, 0.5, 1800),
    (20, 0.0, 3 * 3600), (20, 0.999999, 6 * 3600),  # capped at max_backoff_s
])
def test_backoff_doubles_with_failures_and_is_jittered(failures, rand, expected):
    assert backoff_delay(failures, 300, BOUNDS, rand) == pytest.approx(expected, rel=1e-5)


def test_success_is_jittered_within_ten_percent():
    low = next_poll(NOW, outcome="not_modified", interval_s=300, configured_s=300, failures=0,
                    server_floor_s=None, bounds=BOUNDS, rand=0.0)
    high = next_poll(NOW, outcome="not_modified", interval_s=300, configured_s=300, failures=0,
                     server_floor_s=None, bounds=BOUNDS, rand=0.999999)
    assert low.reason == high.reason == "adaptive"
    assert low.interval_s == high.interval_s == 375
    assert low.at == NOW + timedelta(seconds=375 * 0.9)
    assert high.delay_s == pytest.approx(375 * 1.1, rel=1e-5)


@pytest.mark.parametrize("outcome, failures, floor, expected_delay, reason", [
    ("not_modified", 0, 1800, 1800, "server_floor"),   # max-age / ttl above the interval
    ("not_modified", 0, 10, 375, "adaptive"),          # a floor below the interval changes nothing
    ("error", 1, 7200, 7200, "server_floor"),          # Retry-After above the backoff
    ("error", 1, 10 * 86400, 86400, "server_floor"),   # a hostile Retry-After is capped
    ("error", 3, None, 600, "backoff"),
])
def test_server_hints_are_a_floor(outcome, failures, floor, expected_delay, reason):
    decision = next_poll(NOW, outcome=outcome, interval_s=300, configured_s=300, failures=failures,
                         server_floor_s=floor, bounds=BOUNDS, rand=0.0 if outcome == "error" else 0.5)
    assert decision.reason == reason
    assert decision.delay_s == pytest.approx(expected_delay)
    assert decision.at == NOW + timedelta(seconds=decision.delay_s)


def test_publishing_feed_converges_to_its_lower_bound_and_quiet_feed_to_its_upper():
    busy = quiet = 300.0
    for _ in range(30):
        busy = adapt_interval(busy, 300, "new", BOUNDS)
        quiet = adapt_interval(quiet, 300, "not_modified", BOUNDS)
    assert (busy, quiet) == (75, 1200)
