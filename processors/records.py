"""What both processor stages share: the consumer's view of a record, the key-value state the
story stage persists, and the dead letter for a record that cannot be handled."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from newswatch.schemas import DeadLetter

STAGE = "processors"


class KeyValueState(Protocol):
    """A persisted string -> JSON-object map; writes name the partition whose changelog keeps them."""

    def get(self, key: str) -> dict | None: ...

    def put(self, key: str, value: dict, partition: int) -> None: ...

    def delete(self, key: str, partition: int) -> None: ...

    def items(self) -> Iterable[tuple[str, dict]]: ...


class MemoryState:
    """A KeyValueState in a dict (unit tests and the backtest, where nothing is persisted)."""

    def __init__(self) -> None:
        self.data: dict[str, dict] = {}

    def get(self, key: str) -> dict | None:
        return self.data.get(key)

    def put(self, key: str, value: dict, partition: int) -> None:
        self.data[key] = value

    def delete(self, key: str, partition: int) -> None:
        self.data.pop(key, None)

    def items(self) -> Iterable[tuple[str, dict]]:
        return list(self.data.items())


@dataclass(frozen=True)
class InboundRecord:
    """One record from a topic (articles or candidates), as the consumer saw it."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None


def dead_letter_for(record: InboundRecord, reason: str, now: datetime) -> DeadLetter:
    """A DeadLetter that keeps the original bytes (as text when they are UTF-8) and says why."""
    text: str | None = None
    raw64: str | None = None
    if record.value is not None:
        try:
            text = record.value.decode("utf-8")
        except UnicodeDecodeError:
            raw64 = base64.b64encode(record.value).decode("ascii")
    key = record.key.decode("utf-8", errors="replace") if record.key is not None else None
    return DeadLetter(stage=STAGE, error=reason, time=now, topic=record.topic, partition=record.partition,
                      offset=record.offset, key=key, value=text, value_base64=raw64)
