"""The `process:` section of newswatch.yaml: batching, dedup retention, story grouping, reloads.

Durations are written the way people say them (`90s`, `15m`, `48h`, `7d`); every field has a
default, so the whole section may be left out.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

import pydantic

from newswatch.yamlconf import StrictModel

_DURATION = re.compile(r"^\s*(?P<amount>\d+(?:\.\d+)?)\s*(?P<unit>ms|s|m|h|d|w)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """`"7d"` -> 7 days; ValueError naming the accepted units for anything else."""
    found = _DURATION.match(text) if isinstance(text, str) else None
    if not found:
        raise ValueError(f"{text!r} is not a duration like 500ms, 30s, 15m, 48h, 7d or 2w")
    return timedelta(seconds=float(found["amount"]) * _UNIT_SECONDS[found["unit"]])


def _duration(value: object) -> object:
    if isinstance(value, str):
        return parse_duration(value)
    return value


Duration = Annotated[timedelta, pydantic.BeforeValidator(_duration)]


class ProcessSettings(StrictModel):
    """Tuning for `newswatch process`; the defaults suit one worker on a laptop."""

    detection_process: bool = pydantic.Field(
        default=False,
        description="detect in a child process beside the event loop (default: in the loop, one process per worker)")
    detection_processes: int = pydantic.Field(
        default=1, ge=1, le=64,
        description="child processes that detect, with detection_process: true (one per spare core)")
    batch_size: int = pydantic.Field(default=1000, ge=1, le=100_000,
                                     description="articles handled per batch (faust stream.take_events)")
    batch_within: Duration = pydantic.Field(default=timedelta(milliseconds=200),
                                            description="longest wait to fill a batch")
    dedup_retention: Duration = pydantic.Field(default=timedelta(days=7),
                                               description="how long a matched article id is remembered")
    story_window: Duration = pydantic.Field(default=timedelta(days=3),
                                            description="a story is closed after this long without a new source")
    story_similarity: float = pydantic.Field(
        default=0.5, gt=0.0, le=1.0,
        description="estimated Jaccard similarity of title+lead word pairs needed to join a story")
    max_sources: int = pydantic.Field(default=50, ge=1, le=1000, description="sources listed per story")
    reload_interval: Duration = pydantic.Field(default=timedelta(seconds=2),
                                               description="how often watchlist files are checked for changes")
    stop_timeout: Duration = pydantic.Field(
        default=timedelta(seconds=20),
        description="longest clean shutdown after SIGTERM/SIGINT before the worker exits anyway")
    session_timeout: Duration = pydantic.Field(
        default=timedelta(seconds=10),
        description="a worker that stops heartbeating (crashed) loses its partitions after this long")

    @pydantic.field_validator("batch_within", "dedup_retention", "story_window", "reload_interval", "session_timeout",
                              "stop_timeout")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be longer than zero")
        return value
