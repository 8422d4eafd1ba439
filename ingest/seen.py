"""The ingest state file (SQLite): which articles were seen, which wait for the broker, and how
each feed is doing (conditional-GET validators, schedule, health). It survives restarts.

Why SQLite and not a compacted Kafka topic: the poller must answer "seen before?" for every
entry of every modified feed, and `newswatch feeds` must show feed health while the broker is
down. A local file answers both at once and without a broker, and one transaction can record
the new articles (the outbox), the feed's new validators and its health together, so a crash
can never leave validators that say "nothing new" while the articles they covered are lost.
The cost: the state belongs to one ingest instance (run one poller per state_dir; scale by
splitting the feeds file, not by running replicas on the same one).

Tables:
  seen_keys  key -> article_id, state ('pending' until the broker acknowledged, then 'published'),
             last_sighted (for pruning). An entry is a duplicate when any of its keys is here.
  outbox     article_id -> the encoded Article, in arrival order; deleted once acknowledged.
  page_wait  article_id -> the encoded Article (feed text) while its page is fetched; moved to the
             outbox, with the page's text or as it is, when the fetch ends. A row left by a stopped
             process is moved as it is at the next start: a page is fetched at most once.
  feeds      url -> validators, interval, next poll, health counters.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

from ingest.parse import ParsedEntry

STATE_FILENAME = "ingest.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS seen_keys (
    key TEXT PRIMARY KEY,
    article_id TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'published')),
    last_sighted REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS seen_keys_article ON seen_keys(article_id);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    article_id TEXT NOT NULL UNIQUE,
    feed_url TEXT NOT NULL,
    payload BLOB NOT NULL,
    queued_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS page_wait (
    article_id TEXT PRIMARY KEY,
    feed_url TEXT NOT NULL,
    payload BLOB NOT NULL,
    queued_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS feeds (
    url TEXT PRIMARY KEY,
    etag TEXT,
    last_modified TEXT,
    interval_s REAL,
    next_poll_at REAL,
    last_attempt_at REAL,
    last_success_at REAL,
    last_outcome TEXT,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    articles_total INTEGER NOT NULL DEFAULT 0
);
"""


def _ts(value: datetime | None) -> float | None:
    return value.timestamp() if value else None


def _dt(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, tz=timezone.utc) if value is not None else None


@dataclass(frozen=True)
class FeedState:
    """What is remembered about one feed between polls and across restarts."""

    url: str
    etag: str | None = None
    last_modified: str | None = None
    interval_s: float | None = None
    next_poll_at: datetime | None = None
    last_attempt_at: datetime | None = None
    last_success_at: datetime | None = None
    last_outcome: str | None = None
    consecutive_failures: int = 0
    last_error: str | None = None
    articles_total: int = 0

    def with_(self, **changes) -> "FeedState":
        return replace(self, **changes)


@dataclass(frozen=True)
class PendingArticle:
    seq: int
    article_id: str
    payload: bytes


class IngestStore:
    """One SQLite connection, used from one thread (the poller's event loop)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None)  # explicit transactions below
        # WAL keeps readers (`newswatch feeds`) from blocking the poller; NORMAL sync is durable
        # across process crashes, which is what "survives restarts" needs.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)

    @classmethod
    def in_dir(cls, state_dir: str | Path) -> "IngestStore":
        return cls(Path(state_dir) / STATE_FILENAME)

    def close(self) -> None:
        self._db.close()

    # --- feeds ----------------------------------------------------------------------------

    _FEED_COLUMNS = ("SELECT url, etag, last_modified, interval_s, next_poll_at, last_attempt_at, last_success_at, "
                     "last_outcome, consecutive_failures, last_error, articles_total FROM feeds")

    @staticmethod
    def _feed_from_row(row) -> FeedState:
        return FeedState(row[0], row[1], row[2], row[3], _dt(row[4]), _dt(row[5]), _dt(row[6]),
                         row[7], row[8], row[9], row[10])

    def feed_states(self) -> dict[str, FeedState]:
        return {row[0]: self._feed_from_row(row) for row in self._db.execute(self._FEED_COLUMNS)}

    def feed_state(self, url: str) -> FeedState:
        row = self._db.execute(self._FEED_COLUMNS + " WHERE url = ?", (url,)).fetchone()
        return self._feed_from_row(row) if row else FeedState(url)

    def feed_states_for(self, urls: Iterable[str]) -> dict[str, FeedState]:
        known = self.feed_states()
        return {url: known.get(url) or FeedState(url) for url in urls}

    def _save_feed(self, state: FeedState) -> None:
        self._db.execute(
            "INSERT INTO feeds (url, etag, last_modified, interval_s, next_poll_at, last_attempt_at, last_success_at, "
            "last_outcome, consecutive_failures, last_error, articles_total) VALUES (?,?,?,?,?,?,?,?,?,?,?) "
            "ON CONFLICT(url) DO UPDATE SET etag=excluded.etag, last_modified=excluded.last_modified, "
            "interval_s=excluded.interval_s, next_poll_at=excluded.next_poll_at, "
            "last_attempt_at=excluded.last_attempt_at, last_success_at=excluded.last_success_at, "
            "last_outcome=excluded.last_outcome, consecutive_failures=excluded.consecutive_failures, "
            "last_error=excluded.last_error, articles_total=excluded.articles_total",
            (state.url, state.etag, state.last_modified, state.interval_s, _ts(state.next_poll_at),
             _ts(state.last_attempt_at), _ts(state.last_success_at), state.last_outcome,
             state.consecutive_failures, state.last_error, state.articles_total))

    def save_feed(self, state: FeedState) -> None:
        with self._transaction():
            self._save_feed(state)

    # --- articles ---------------------------------------------------------------------------

    def unseen(self, entries: Sequence[ParsedEntry]) -> list[ParsedEntry]:
        """The entries none of whose keys is known (read-only; `record_poll` is the atomic version)."""
        known = self._known_keys(key for entry in entries for key in entry.keys)
        return [entry for entry in entries if not any(key in known for key in entry.keys)]

    def _known_keys(self, keys: Iterable[str]) -> set[str]:
        keys = list(dict.fromkeys(keys))
        known: set[str] = set()
        for start in range(0, len(keys), 500):  # SQLite caps bound parameters per statement
            chunk = keys[start:start + 500]
            marks = ",".join("?" * len(chunk))
            known.update(row[0] for row in self._db.execute(
                f"SELECT key FROM seen_keys WHERE key IN ({marks})", chunk))
        return known

    def record_poll(self, state: FeedState, entries: Sequence[ParsedEntry], now: datetime,
                    hold: Callable[[ParsedEntry], bool] = lambda entry: False) -> list[ParsedEntry]:
        """In one transaction: queue the entries not seen before (first one wins when two share a
        key), mark the sighting of the known ones, and save the feed's state. Returns the queued.
        New entries for which `hold(entry)` is true wait in page_wait instead of the outbox."""
        stamp = now.timestamp()
        with self._transaction():
            known = self._known_keys(key for entry in entries for key in entry.keys)
            queued = []
            for entry in entries:
                if any(key in known for key in entry.keys):
                    continue
                article = entry.article
                table = "page_wait" if hold(entry) else "outbox"
                self._db.execute(f"INSERT INTO {table} (article_id, feed_url, payload, queued_at) VALUES (?,?,?,?)",
                                 (article.id, state.url, article.encode(), stamp))
                self._db.executemany(
                    "INSERT INTO seen_keys (key, article_id, state, last_sighted) VALUES (?,?,'pending',?)",
                    [(key, article.id, stamp) for key in entry.keys])
                known.update(entry.keys)
                queued.append(entry)
            queued_ids = {entry.article.id for entry in queued}
            sighted = list({key for entry in entries if entry.article.id not in queued_ids
                            for key in entry.keys if key in known})
            for start in range(0, len(sighted), 500):
                chunk = sighted[start:start + 500]
                self._db.execute(f"UPDATE seen_keys SET last_sighted=? WHERE key IN ({','.join('?' * len(chunk))})",
                                 [stamp, *chunk])
            self._save_feed(state.with_(articles_total=state.articles_total + len(queued)))
        return queued

    def release_page(self, article_id: str, payload: bytes | None = None) -> bool:
        """Move a held article to the outbox, with `payload` (the article with its page's text) or
        as it was held; False when it was not held (already released)."""
        with self._transaction():
            row = self._db.execute("SELECT feed_url, payload, queued_at FROM page_wait WHERE article_id = ?",
                                   (article_id,)).fetchone()
            if row is None:
                return False
            self._db.execute("DELETE FROM page_wait WHERE article_id = ?", (article_id,))
            self._db.execute("INSERT INTO outbox (article_id, feed_url, payload, queued_at) VALUES (?,?,?,?)",
                             (article_id, row[0], payload if payload is not None else row[1], row[2]))
        return True

    def release_all_pages(self) -> int:
        """Move every held article to the outbox as it was held (at start: pages that a stopped
        process was fetching are not fetched again); returns how many."""
        with self._transaction():
            self._db.execute("INSERT INTO outbox (article_id, feed_url, payload, queued_at) "
                             "SELECT article_id, feed_url, payload, queued_at FROM page_wait ORDER BY queued_at")
            cursor = self._db.execute("DELETE FROM page_wait")
        return cursor.rowcount

    def held_count(self) -> int:
        return self._db.execute("SELECT count(*) FROM page_wait").fetchone()[0]

    def pending_after(self, seq: int, limit: int) -> list[PendingArticle]:
        """Queued articles not yet acknowledged, oldest first, after outbox position `seq`."""
        rows = self._db.execute("SELECT seq, article_id, payload FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
                                (seq, limit)).fetchall()
        return [PendingArticle(row[0], row[1], bytes(row[2])) for row in rows]

    def pending_count(self) -> int:
        """Articles not yet acknowledged by the broker: in the outbox, or held for their page."""
        return self._db.execute("SELECT (SELECT count(*) FROM outbox) + (SELECT count(*) FROM page_wait)").fetchone()[0]

    def mark_published(self, article_ids: Sequence[str]) -> None:
        """The broker acknowledged these: the seen-state advances and the outbox forgets them."""
        if not article_ids:
            return
        with self._transaction():
            for start in range(0, len(article_ids), 500):
                chunk = list(article_ids[start:start + 500])
                marks = ",".join("?" * len(chunk))
                self._db.execute(f"UPDATE seen_keys SET state='published' WHERE article_id IN ({marks})", chunk)
                self._db.execute(f"DELETE FROM outbox WHERE article_id IN ({marks})", chunk)

    def published_count(self) -> int:
        return self._db.execute("SELECT count(DISTINCT article_id) FROM seen_keys WHERE state='published'").fetchone()[0]

    def prune(self, now: datetime, retention_days: float) -> int:
        """Forget published keys not sighted for `retention_days`; returns how many went."""
        cutoff = now.timestamp() - retention_days * 86400
        with self._transaction():
            cursor = self._db.execute("DELETE FROM seen_keys WHERE state='published' AND last_sighted < ?", (cutoff,))
        return cursor.rowcount

    def _transaction(self):
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection):
        self._db = db

    def __enter__(self):
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, exc, tb):
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")
        return False
