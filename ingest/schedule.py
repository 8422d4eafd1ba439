"""When to poll a feed next: a pure function of the last outcome, the feed's state and the clock.

Order of the rules in `next_poll()`:
  1. after a success, the interval adapts to the publishing rate: new entries shorten it by a
     quarter, an unchanged feed (304 or nothing new) lengthens it by a quarter, always within the
     feed's bounds: its configured interval / 4 .. x 4, clamped to the global floor and ceiling;
  2. after an error, the wait doubles with each consecutive failure (capped at max_backoff_s);
  3. jitter spreads feeds apart: +-10 % on normal polls, 50-100 % of the wait on backoff;
  4. what the server asked for (Retry-After, Cache-Control max-age, RSS ttl) is a floor under
     the result, capped at max_server_delay_s so a hostile server cannot park a feed for ever.
`rand` (0 <= rand < 1) and `now` are passed in, so the schedule is testable without a clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

Outcome = Literal["new", "unchanged", "not_modified", "error"]
SHORTEN, LENGTHEN = 0.75, 1.25


@dataclass(frozen=True)
class ScheduleBounds:
    floor_s: float = 60.0
    ceiling_s: float = 3600.0
    max_backoff_s: float = 6 * 3600.0
    max_server_delay_s: float = 24 * 3600.0


@dataclass(frozen=True)
class NextPoll:
    at: datetime
    interval_s: float  # the adapted interval, remembered for the next decision
    delay_s: float
    reason: Literal["adaptive", "backoff", "server_floor"]


def feed_bounds(configured_s: float, bounds: ScheduleBounds) -> tuple[float, float]:
    """The range a feed's interval may adapt within."""
    low = min(max(configured_s / 4, bounds.floor_s), bounds.ceiling_s)
    high = max(min(configured_s * 4, bounds.ceiling_s), low)
    return low, high


def adapt_interval(current_s: float, configured_s: float, outcome: Outcome, bounds: ScheduleBounds) -> float:
    """The interval after a successful poll (rule 1); errors leave it unchanged."""
    low, high = feed_bounds(configured_s, bounds)
    if outcome == "new":
        current_s *= SHORTEN
    elif outcome in ("unchanged", "not_modified"):
        current_s *= LENGTHEN
    return min(max(current_s, low), high)


def backoff_delay(failures: int, interval_s: float, bounds: ScheduleBounds, rand: float) -> float:
    """Wait after `failures` consecutive errors (rule 2 and 3): interval x 2^(failures-1), jittered."""
    exponent = min(max(failures, 1) - 1, 30)
    ceiling = min(bounds.max_backoff_s, interval_s * 2 ** exponent)
    return ceiling * (0.5 + 0.5 * rand)


def next_poll(now: datetime, *, outcome: Outcome, interval_s: float, configured_s: float, failures: int,
              server_floor_s: float | None, bounds: ScheduleBounds, rand: float) -> NextPoll:
    """When to poll next and why. `failures` counts consecutive errors including this outcome."""
    if outcome == "error":
        interval = min(max(interval_s, feed_bounds(configured_s, bounds)[0]), bounds.ceiling_s)
        delay, reason = backoff_delay(failures, interval, bounds, rand), "backoff"
    else:
        interval = adapt_interval(interval_s, configured_s, outcome, bounds)
        delay, reason = interval * (0.9 + 0.2 * rand), "adaptive"
    if server_floor_s is not None:
        floor = min(server_floor_s, bounds.max_server_delay_s)
        if floor > delay:
            delay, reason = floor, "server_floor"
    return NextPoll(at=now + timedelta(seconds=delay), interval_s=interval, delay_s=delay, reason=reason)
