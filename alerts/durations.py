"""Durations as people write them in YAML (`5s`, `10m`, `2h`, `1d`, or a number of seconds).

Parsed once at load into seconds (float), so the rest of the stage does plain arithmetic.
"""

from __future__ import annotations

import re
from typing import Annotated

import pydantic

_DURATION = re.compile(r"^\s*(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: object) -> float:
    """Seconds for `value` (`"90s"`, `"5m"`, `2.5`); ValueError naming the accepted forms otherwise."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 5m, 2h or 1d")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match["number"]) * _UNIT_SECONDS[match["unit"]]
    else:
        raise ValueError(f"{value!r} is not a duration such as 30s, 5m, 2h or 1d")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


Duration = Annotated[float, pydantic.BeforeValidator(parse_duration)]
