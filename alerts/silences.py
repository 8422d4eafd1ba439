"""Silences set from the command line, and picked up by a running dispatcher without a restart.

`add_silence(path, silence, now)` appends to the `silences:` list of the subscriptions file and
`remove_silences(path, numbers, expired_at)` takes entries out of it, both keeping its comments
and layout (ruamel round-trip) and refusing to write a file that would not validate. `SilenceWatcher` re-reads that list when the file changes, so `newswatch alerts
silence add` takes effect within seconds; an invalid edit is reported and the old list kept.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from alerts.subscriptions import Silence, load_subscriptions, load_subscriptions_text


def _round_trip() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    return yaml


def _write_valid(path: Path, yaml: YAML, doc) -> None:
    out = io.StringIO()
    yaml.dump(doc, out)
    load_subscriptions_text(out.getvalue(), str(path))  # never write a file `newswatch check` would reject
    path.write_text(out.getvalue(), encoding="utf-8")


def add_silence(path: Path, silence: Silence) -> None:
    """Append `silence` to the file's `silences:` (ConfigError, and no write, if the result is invalid)."""
    yaml = _round_trip()
    doc = yaml.load(path.read_text(encoding="utf-8")) or CommentedMap()
    if not isinstance(doc.get("silences"), list):
        doc["silences"] = CommentedSeq()
    entry = CommentedMap()
    entry["matchers"] = CommentedMap(silence.matchers.model_dump(exclude_none=True))
    entry["expires_at"] = silence.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    if silence.subscriptions:
        entry["subscriptions"] = list(silence.subscriptions)
    if silence.comment:
        entry["comment"] = silence.comment
    doc["silences"].append(entry)
    _write_valid(path, yaml, doc)


def remove_silences(path: Path, numbers: Iterable[int] = (), expired_at: datetime | None = None) -> list[Silence]:
    """Take silences out of the file: those numbered `numbers` (1 for the first in the file, as
    `silence list` shows them) and, with `expired_at`, every one expired by then. Returns what
    was removed. An unknown number is a ValueError and nothing is written."""
    silences = load_subscriptions(path).silences  # validates the file before anything is touched
    wanted = set(numbers)
    unknown = sorted(n for n in wanted if not 1 <= n <= len(silences))
    if unknown:
        raise ValueError(f"{path}: no silence #{', #'.join(map(str, unknown))} "
                         f"(the file has {len(silences)}; see `newswatch alerts silence list --all`)")
    doomed = [i for i, item in enumerate(silences)
              if i + 1 in wanted or (expired_at is not None and not item.active(expired_at))]
    if not doomed:
        return []
    yaml = _round_trip()
    doc = yaml.load(path.read_text(encoding="utf-8"))
    for i in reversed(doomed):
        del doc["silences"][i]
    _write_valid(path, yaml, doc)
    return [silences[i] for i in doomed]


def active_silences(silences: tuple[Silence, ...], now: datetime) -> list[Silence]:
    return [s for s in silences if s.active(now)]


class SilenceWatcher:
    """Re-reads the silences of a subscriptions file when its modification time changes."""

    def __init__(self, path: Path):
        self.path = path
        self._stamp = self._current_stamp()

    def _current_stamp(self) -> tuple[int, int] | None:
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def poll(self) -> tuple[Silence, ...] | None:
        """The file's silences if it changed since the last poll, else None; ConfigError if it is invalid now."""
        stamp = self._current_stamp()
        if stamp == self._stamp:
            return None
        self._stamp = stamp
        return load_subscriptions(self.path).silences
