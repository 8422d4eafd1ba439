"""Silences set from the command line, and picked up by a running dispatcher without a restart.

`add_silence(path, silence, now)` appends to the `silences:` list of the subscriptions file,
keeping its comments and layout (ruamel round-trip), and refuses to write a file that would
not validate. `SilenceWatcher` re-reads that list when the file changes, so `newswatch alerts
silence add` takes effect within seconds; an invalid edit is reported and the old list kept.
"""

from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from alerts.subscriptions import Silence, load_subscriptions, load_subscriptions_text


def add_silence(path: Path, silence: Silence) -> None:
    """Append `silence` to the file's `silences:` (ConfigError, and no write, if the result is invalid)."""
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    text = path.read_text(encoding="utf-8")
    doc = yaml.load(text) or CommentedMap()
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
    out = io.StringIO()
    yaml.dump(doc, out)
    load_subscriptions_text(out.getvalue(), str(path))  # never write a file `newswatch check` would reject
    path.write_text(out.getvalue(), encoding="utf-8")


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
