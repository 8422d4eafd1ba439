"""Which matched articles were already handled: first sight, a replay of the same record, or a
second publication of an article id that must not be matched again.

The memory is a key-value table (article id -> `Seen`) that the caller persists (a faust table
with a changelog); entries older than the retention are forgotten. Decisions return a reason.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass


class Verdict(enum.Enum):
    FIRST = "first"          # never matched before: match it and remember it
    REPLAY = "replay"        # the very record matched before (same partition and offset): a crash
                             # replay, so match it again identically
    DUPLICATE = "duplicate"  # the same article id published again: already matched, skip it


@dataclass(frozen=True)
class Seen:
    """Where (articles partition and offset) and when an article id was first matched, and the
    state partition whose changelog keeps the entry."""

    partition: int
    offset: int
    seen_ms: int
    state_partition: int = 0

    def to_json_dict(self) -> dict:
        return {"p": self.partition, "o": self.offset, "ms": self.seen_ms, "sp": self.state_partition}

    @classmethod
    def from_json_dict(cls, data: dict) -> "Seen":
        return cls(partition=data["p"], offset=data["o"], seen_ms=data["ms"], state_partition=data.get("sp", 0))


def judge(previous: Seen | None, partition: int, offset: int) -> Verdict:
    """Whether the record at (partition, offset) holding an already-known article id is new."""
    if previous is None:
        return Verdict.FIRST
    if (previous.partition, previous.offset) == (partition, offset):
        return Verdict.REPLAY
    return Verdict.DUPLICATE


def expired(entries: Iterable[tuple[str, Seen]], now_ms: int, retention_ms: int) -> list[tuple[str, Seen]]:
    """The entries first seen more than `retention_ms` before `now_ms`."""
    return [(key, seen) for key, seen in entries if now_ms - seen.seen_ms > retention_ms]
