"""The processor's state as faust tables with changelog topics: matched article ids (dedup) and
open stories. `TableState` adapts a table to the pipeline's KeyValueState.

Writes name their changelog partition explicitly (the candidates partition of the record that
caused them), because the story stage writes outside faust's per-event context and faust would
otherwise use the partition of whichever event it saw last.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import faust


@dataclass(frozen=True)
class ProcessorTables:
    processed: faust.Table
    stories: faust.Table


def declare_tables(app: faust.App, partitions: int) -> ProcessorTables:
    """Both tables, co-partitioned with the candidates topic (`partitions` partitions): the story
    stage's state moves with the candidates partition it belongs to."""
    def table(name: str, help_: str) -> faust.Table:
        schema = faust.Schema(key_type=str, key_serializer="json", value_serializer="json")
        return app.Table(name, schema=schema, partitions=partitions, help=help_)

    return ProcessorTables(processed=table("processed", "article id -> where and when it was first matched"),
                           stories=table("stories", "story id -> signature and sources of an open story"))


class TableState:
    """A faust Table seen as a KeyValueState (reads from the local store, writes to the changelog)."""

    def __init__(self, table: faust.Table):
        self._table = table

    def get(self, key: str) -> dict | None:
        return self._table.data.get(key) or None

    def put(self, key: str, value: dict, partition: int) -> None:
        self._table.data[key] = value
        self._table.send_changelog(partition, key, value)

    def delete(self, key: str, partition: int) -> None:
        if self._table.data.pop(key, None) is not None:
            # A real tombstone (null value), as faust's own deletes send: JSON would write "null",
            # which compaction keeps and recovery would restore as a key without a value.
            self._table.send_changelog(partition, key, None, value_serializer="raw")

    def items(self) -> Iterable[tuple[str, dict]]:
        return [(key, value) for key, value in self._table.data.items() if value]
