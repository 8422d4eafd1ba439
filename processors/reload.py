"""Live watchlists: the worker re-reads the watchlist folder when its files change (or on SIGHUP)
and swaps the rules between batches; a broken edit keeps the old rules running and says why.

`fingerprint()` is the only file access besides the loader; `WatchlistReloader.poll()` decides
and logs, returning a `ReloadOutcome` whose `reason` is also a log field and metric label.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from newswatch.errors import ConfigError
from newswatch.logs import log_event

log = logging.getLogger("newswatch.processors.reload")


def fingerprint(folder: Path) -> str:
    """A digest of every file's relative path and bytes under `folder` ("" when it is missing).

    Content, not mtimes: an editor that restores a timestamp, or a copy within the same second,
    still counts as a change, and touching a file without changing it does not.
    """
    if not folder.is_dir():
        return ""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        try:
            content = path.read_bytes()
        except OSError:  # removed between listing and reading: the next poll sees the new state
            continue
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + content + b"\0")
    return digest.hexdigest()


@dataclass(frozen=True)
class ReloadOutcome:
    reason: str  # "unchanged", "reloaded", "same_rules" or "invalid"
    version: str
    error: str | None = None


class WatchlistReloader:
    """Holds the live watchlist; `poll()` reloads it when the folder changed or a reload was requested."""

    def __init__(self, folder: Path, loader: Callable[[Path], Any], *,
                 fingerprinter: Callable[[Path], str] = fingerprint):
        self.folder = folder
        self._loader = loader
        self._fingerprint = fingerprinter
        self._seen = fingerprinter(folder)
        self.current = loader(folder)  # a bad folder at start-up is the caller's ConfigError
        self._requested = False

    def request(self) -> None:
        """Reload at the next poll even if nothing seems to have changed (SIGHUP)."""
        self._requested = True

    def poll(self) -> ReloadOutcome:
        seen = self._fingerprint(self.folder)
        if seen == self._seen and not self._requested:
            return ReloadOutcome("unchanged", self.current.version)
        self._seen = seen
        self._requested = False
        try:
            candidate = self._loader(self.folder)
        except ConfigError as exc:
            log_event(log, logging.ERROR, "watchlists_reload_failed", folder=str(self.folder),
                      kept_version=self.current.version, reason=str(exc))
            return ReloadOutcome("invalid", self.current.version, str(exc))
        if candidate.version == self.current.version:
            return ReloadOutcome("same_rules", self.current.version)
        previous, self.current = self.current.version, candidate
        log_event(log, logging.INFO, "watchlists_reloaded", folder=str(self.folder), previous_version=previous,
                  version=candidate.version, topics=len(getattr(candidate, "topics", ()) or ()))
        return ReloadOutcome("reloaded", candidate.version)
