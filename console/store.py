"""The console's own store: SQLite with an FTS5 index, filled from Kafka records.

Tables: `articles` (one row per Match record, with the record itself), `stories` (one row per
story id, kept up to date as its matches arrive), `article_fts` (the normalised text of each
article), `deliveries` and `dead_letters` (from `<prefix>alerts.state` and the alerts DLQ),
`feeds` and `feed_counts` (from `<prefix>feed-health`) and `offsets`: the next offset of each
topic partition, written in the same transaction as the rows it produced, so a restart goes on
where it stopped and a deleted file is rebuilt from Kafka.

Search text is normalised with the detector's own `normalize()` (processors.detection), so a
query matches what a watchlist term would: case, Arabic letter variants and diacritics, digits
of any script, and dashes all fold the same way. Model codes (S-400) are expanded into their
Latin and Cyrillic spellings with the detector's `code_variants`, so «С-400» finds "S-400".

Nothing here touches the network or the clock: callers pass records and `now_ms`.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from alerts.records import AlertDeadLetter, PendingDelivery
from newswatch.errors import SchemaError
from newswatch.schemas import Match, decode
from processors.detection.normalize import code_variants, is_code, normalize

SCHEMA_VERSION = "1"
DAY_MS = 86_400_000

_DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS offsets (topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,
                                    PRIMARY KEY (topic, partition));
CREATE TABLE IF NOT EXISTS articles (
    id INTEGER PRIMARY KEY, article_id TEXT NOT NULL UNIQUE, story_id TEXT NOT NULL, lang TEXT, source TEXT,
    title TEXT NOT NULL, detected_ms INTEGER NOT NULL, score REAL NOT NULL, topics TEXT NOT NULL,
    record TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS articles_story ON articles (story_id);
CREATE INDEX IF NOT EXISTS articles_detected ON articles (detected_ms);
CREATE TABLE IF NOT EXISTS stories (
    story_id TEXT PRIMARY KEY, lang TEXT, title TEXT NOT NULL, first_ms INTEGER NOT NULL, last_ms INTEGER NOT NULL,
    score REAL NOT NULL, topics TEXT NOT NULL, sources_count INTEGER NOT NULL, latest_source TEXT,
    sources TEXT NOT NULL, changed_seq INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS stories_last ON stories (last_ms);
CREATE INDEX IF NOT EXISTS stories_changed ON stories (changed_seq);
CREATE VIRTUAL TABLE IF NOT EXISTS article_fts USING fts5(body, tokenize='unicode61 remove_diacritics 0');
CREATE TABLE IF NOT EXISTS deliveries (
    webhook_id TEXT PRIMARY KEY, subscription TEXT NOT NULL, kind TEXT NOT NULL, story_id TEXT, reason TEXT,
    sequence INTEGER, status TEXT NOT NULL, attempts INTEGER NOT NULL, last_status INTEGER, last_error TEXT,
    created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS deliveries_story ON deliveries (story_id);
CREATE TABLE IF NOT EXISTS dead_letters (
    webhook_id TEXT PRIMARY KEY, subscription TEXT NOT NULL, story_id TEXT, reason TEXT NOT NULL,
    status INTEGER, attempts INTEGER NOT NULL, dead_ms INTEGER NOT NULL, record TEXT NOT NULL,
    replayed TEXT);
CREATE TABLE IF NOT EXISTS feeds (feed_id TEXT PRIMARY KEY, failing INTEGER NOT NULL, updated_ms INTEGER NOT NULL,
                                  record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS feed_counts (feed_id TEXT NOT NULL, at_ms INTEGER NOT NULL, total INTEGER NOT NULL,
                                        PRIMARY KEY (feed_id, at_ms));
"""


@dataclass(frozen=True)
class Consumed:
    """One Kafka record as the store needs it."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True)
class TopicKinds:
    """Which topic holds what (names under the configured prefix)."""

    matches: str
    alerts_state: str
    alerts_dlq: str
    feed_health: str

    @classmethod
    def for_topics(cls, topics) -> "TopicKinds":
        return cls(matches=topics.matches, alerts_state=topics.name("alerts.state"),
                   alerts_dlq=topics.alerts_dlq, feed_health=topics.name("feed-health"))

    @property
    def all(self) -> tuple[str, ...]:
        return (self.matches, self.alerts_state, self.alerts_dlq, self.feed_health)


@dataclass
class ApplyResult:
    stories: set[str] = field(default_factory=set)
    matches: int = 0
    skipped: int = 0
    other: int = 0


@dataclass(frozen=True)
class StoryFilter:
    """What the stories page asks for; every field optional."""

    topic: str | None = None
    lang: str | None = None
    source: str | None = None
    min_score: float | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    q: str | None = None
    limit: int = 50


def search_text(title: str, text: str, summary: str) -> str:
    """What the FTS index holds for an article: its fields through the detector's normalisation."""
    return "\n".join(normalize(part).text for part in (title, summary, text) if part)


def fts_query(query: str) -> str | None:
    """An FTS5 MATCH expression for what a person typed: every word must occur (AND), a model code
    in any of its spellings (OR of phrases); None when nothing searchable is left."""
    words = normalize(query).text.replace("\n", " ").split()
    clauses: list[str] = []
    i = 0
    while i < len(words):
        pair = " ".join(words[i:i + 2])
        if i + 1 < len(words) and is_code(pair):  # "s 400": a letter code and its number
            term, i = pair, i + 2
        else:
            term, i = words[i], i + 1
        tokens = [_fts_tokens(variant) for variant in code_variants(term)] if is_code(term) else [_fts_tokens(term)]
        phrases = sorted({f'"{" ".join(t)}"' for t in tokens if t})
        if phrases:
            clauses.append(phrases[0] if len(phrases) == 1 else "(" + " OR ".join(phrases) + ")")
    return " AND ".join(clauses) if clauses else None


def _fts_tokens(text: str) -> list[str]:
    # unicode61 splits on anything that is not a letter or digit; quotes would end the phrase.
    return [t for t in "".join(c if c.isalnum() else " " for c in text).split() if t]


class Store:
    """One SQLite file; writes from one thread at a time, reads from any (a connection per thread)."""

    def __init__(self, path: Path, kinds: TopicKinds):
        self.path = Path(path)
        self.kinds = kinds
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.created = not self.path.exists()
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._seq = 0
        db = self._db()
        db.executescript(_DDL)
        db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
        db.commit()
        row = db.execute("SELECT max(changed_seq) FROM stories").fetchone()
        self._seq = row[0] or 0

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        return db

    @property
    def seq(self) -> int:
        """Grows with every change to a story (the live page asks for what changed after a seq)."""
        return self._seq

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    # --- writing ---------------------------------------------------------------------------

    def offsets(self) -> dict[tuple[str, int], int]:
        return {(r["topic"], r["partition"]): r["next_offset"]
                for r in self._db().execute("SELECT topic, partition, next_offset FROM offsets")}

    def apply(self, records: Sequence[Consumed], now_ms: int) -> ApplyResult:
        """Store a batch of records and their next offsets in one transaction."""
        result = ApplyResult()
        with self._write_lock:
            db = self._db()
            with db:
                nexts: dict[tuple[str, int], int] = {}
                for record in records:
                    nexts[(record.topic, record.partition)] = record.offset + 1
                    try:
                        if record.topic == self.kinds.matches:
                            story = self._apply_match(db, record)
                            if story is None:
                                result.skipped += 1
                            else:
                                result.stories.add(story)
                                result.matches += 1
                        elif record.topic == self.kinds.alerts_state:
                            result.other += self._apply_state(db, record, now_ms)
                        elif record.topic == self.kinds.alerts_dlq:
                            result.other += self._apply_dead_letter(db, record)
                            if record.value is not None:
                                story = json.loads(record.value).get("story_id")
                                if story:
                                    result.stories.add(story)
                        elif record.topic == self.kinds.feed_health:
                            result.other += self._apply_feed(db, record)
                    except (SchemaError, ValueError, KeyError):
                        result.skipped += 1  # not ours to fix: the stages dead-letter their own input
                db.executemany("INSERT OR REPLACE INTO offsets VALUES (?, ?, ?)",
                               [(t, p, o) for (t, p), o in nexts.items()])
        return result

    def _apply_match(self, db: sqlite3.Connection, record: Consumed) -> str | None:
        match = decode(record.value, Match)
        detected_ms = int(match.detected_at.timestamp() * 1000)
        score = max((t.score for t in match.topics), default=0.0)
        topics = sorted({t.topic for t in match.topics})
        raw = record.value.decode("utf-8") if isinstance(record.value, bytes) else str(record.value)
        old = db.execute("SELECT id FROM articles WHERE article_id = ?", (match.id,)).fetchone()
        if old is not None:  # the same article again (a replay): replaced, and its story recomputed
            db.execute("DELETE FROM article_fts WHERE rowid = ?", (old["id"],))
            db.execute("DELETE FROM articles WHERE id = ?", (old["id"],))
        cursor = db.execute(
            "INSERT INTO articles (article_id, story_id, lang, source, title, detected_ms, score, topics, record) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (match.id, match.story_id, match.lang, match.source, match.title, detected_ms, score, " ".join(topics),
             raw))
        db.execute("INSERT INTO article_fts (rowid, body) VALUES (?, ?)",
                   (cursor.lastrowid, search_text(match.title, match.text, match.summary)))
        story = db.execute("SELECT * FROM stories WHERE story_id = ?", (match.story_id,)).fetchone()
        if story is None and old is None:  # a new story: its first article says it all
            names = {s.source or "" for s in match.sources} | {match.source or ""}
            self._seq += 1
            db.execute("INSERT INTO stories VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (match.story_id, match.lang, match.title, detected_ms, detected_ms, score,
                        " " + " ".join(topics) + " ", max(1, len({s.article_id for s in match.sources} | {match.id})),
                        match.source, "\x1f" + "\x1f".join(sorted(names)) + "\x1f", self._seq))
            return match.story_id
        if old is not None or story is None or detected_ms < story["first_ms"]:
            self._refresh_story(db, match.story_id)
            return match.story_id
        # A newer source of a known story: fold it into the row without re-reading the story.
        names = set(filter(None, story["sources"].split("\x1f")))
        names.update(s.source or "" for s in match.sources)
        names.add(match.source or "")
        latest = detected_ms >= story["last_ms"]
        self._seq += 1
        db.execute("UPDATE stories SET last_ms = ?, score = ?, topics = ?, sources_count = ?, latest_source = ?, "
                   "sources = ?, changed_seq = ? WHERE story_id = ?",
                   (max(story["last_ms"], detected_ms), max(story["score"], score),
                    " " + " ".join(sorted(set(story["topics"].split()) | set(topics))) + " ",
                    max(story["sources_count"] + 1, len(match.sources)),
                    match.source if latest else story["latest_source"],
                    "\x1f" + "\x1f".join(sorted(names)) + "\x1f", self._seq, match.story_id))
        return match.story_id

    def _refresh_story(self, db: sqlite3.Connection, story_id: str) -> None:
        rows = db.execute("SELECT lang, source, title, detected_ms, score, topics, record FROM articles "
                          "WHERE story_id = ? ORDER BY detected_ms, id", (story_id,)).fetchall()
        if not rows:
            db.execute("DELETE FROM stories WHERE story_id = ?", (story_id,))
            return
        topics = sorted({t for r in rows for t in r["topics"].split()})
        sources: dict[str, str] = {}
        latest = json.loads(rows[-1]["record"])
        for source in latest.get("sources") or ():
            sources[source["article_id"]] = source.get("source") or ""
        for r in rows:
            record = json.loads(r["record"])
            sources.setdefault(record["id"], r["source"] or "")
        self._seq += 1
        db.execute("INSERT OR REPLACE INTO stories VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (story_id, rows[0]["lang"], rows[0]["title"], rows[0]["detected_ms"], rows[-1]["detected_ms"],
                    max(r["score"] for r in rows), " " + " ".join(topics) + " ", len(sources), rows[-1]["source"],
                    "\x1f" + "\x1f".join(sorted(set(sources.values()))) + "\x1f", self._seq))

    def _apply_state(self, db: sqlite3.Connection, record: Consumed, now_ms: int) -> int:
        key = (record.key or b"").decode("utf-8", errors="replace")
        if not key.startswith("pending/"):
            return 0
        webhook_id = key.removeprefix("pending/")
        if record.value is None:  # done: delivered, unless its dead letter says otherwise
            db.execute("UPDATE deliveries SET status = 'delivered', attempts = attempts + 1, updated_ms = ? "
                       "WHERE webhook_id = ? AND status NOT IN ('dead', 'delivered')", (record.timestamp_ms, webhook_id))
            return 1
        pending = decode(record.value, PendingDelivery)
        body = _body_fields(pending.body)
        db.execute(
            "INSERT INTO deliveries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (webhook_id) DO UPDATE SET "
            "status = CASE WHEN deliveries.status = 'dead' THEN 'dead' ELSE excluded.status END, "
            "attempts = max(deliveries.attempts, excluded.attempts), last_status = excluded.last_status, "
            "last_error = excluded.last_error, updated_ms = excluded.updated_ms",
            (pending.id, pending.subscription, pending.kind, pending.story_id, body.get("reason"), body.get("sequence"),
             "retrying" if pending.attempts else "pending", pending.attempts, pending.last_status, pending.last_error,
             int(pending.created_at.timestamp() * 1000), record.timestamp_ms))
        return 1

    def _apply_dead_letter(self, db: sqlite3.Connection, record: Consumed) -> int:
        letter = decode(record.value, AlertDeadLetter)
        body = _body_fields(letter.body)
        dead_ms = int(letter.dead_at.timestamp() * 1000)
        db.execute("INSERT OR REPLACE INTO dead_letters VALUES (?, ?, ?, ?, ?, ?, ?, ?, "
                   "(SELECT replayed FROM dead_letters WHERE webhook_id = ?))",
                   (letter.id, letter.subscription, letter.story_id, letter.reason, letter.status, letter.attempts,
                    dead_ms, letter.model_dump_json(by_alias=True), letter.id))
        db.execute(
            "INSERT INTO deliveries VALUES (?, ?, ?, ?, ?, ?, 'dead', ?, ?, ?, ?, ?) ON CONFLICT (webhook_id) DO UPDATE "
            "SET status = 'dead', attempts = excluded.attempts, last_status = excluded.last_status, "
            "last_error = excluded.last_error, updated_ms = excluded.updated_ms",
            (letter.id, letter.subscription, letter.kind, letter.story_id, body.get("reason"), body.get("sequence"),
             letter.attempts, letter.status, letter.error or letter.reason, int(letter.created_at.timestamp() * 1000),
             dead_ms))
        return 1

    def _apply_feed(self, db: sqlite3.Connection, record: Consumed) -> int:
        if record.value is None:
            db.execute("DELETE FROM feeds WHERE feed_id = ?", ((record.key or b"").decode("utf-8", "replace"),))
            return 1
        data = json.loads(record.value)
        if data.get("schema", "").split("/")[0] != "newswatch.feed_health":
            raise ValueError("not a feed health record")
        feed_id = str(data["feed_id"])
        db.execute("INSERT OR REPLACE INTO feeds VALUES (?, ?, ?, ?)",
                   (feed_id, 1 if data.get("consecutive_failures") else 0, record.timestamp_ms, json.dumps(data)))
        db.execute("INSERT OR REPLACE INTO feed_counts VALUES (?, ?, ?)",
                   (feed_id, record.timestamp_ms, int(data.get("articles_total") or 0)))
        return 1

    def prune(self, now_ms: int, retention_ms: int) -> int:
        """Drop what is older than the retention; returns the articles removed."""
        cutoff = now_ms - retention_ms
        with self._write_lock:
            db = self._db()
            with db:
                old = db.execute("SELECT id, story_id FROM articles WHERE detected_ms < ?", (cutoff,)).fetchall()
                db.executemany("DELETE FROM article_fts WHERE rowid = ?", [(r["id"],) for r in old])
                db.execute("DELETE FROM articles WHERE detected_ms < ?", (cutoff,))
                for story in {r["story_id"] for r in old}:
                    self._refresh_story(db, story)
                db.execute("DELETE FROM deliveries WHERE updated_ms < ?", (cutoff,))
                db.execute("DELETE FROM dead_letters WHERE dead_ms < ?", (cutoff,))
                db.execute("DELETE FROM feed_counts WHERE at_ms < ?", (min(cutoff, now_ms - 2 * DAY_MS),))
        return len(old)

    def mark_replayed(self, webhook_id: str, outcome: str) -> None:
        with self._write_lock:
            db = self._db()
            with db:
                db.execute("UPDATE dead_letters SET replayed = ? WHERE webhook_id = ?", (outcome, webhook_id))

    # --- reading ---------------------------------------------------------------------------

    def stories(self, f: StoryFilter, after_seq: int | None = None) -> list[dict]:
        where, args = [], []
        if f.topic:
            where.append("s.topics LIKE ? ESCAPE '\\'")
            args.append(f"% {_like(f.topic)} %")
        if f.lang:
            where.append("s.lang = ?")
            args.append(f.lang)
        if f.source:
            where.append("s.sources LIKE ? ESCAPE '\\'")
            args.append(f"%\x1f{_like(f.source)}\x1f%")
        if f.min_score is not None:
            where.append("s.score >= ?")
            args.append(f.min_score)
        if f.since_ms is not None:
            where.append("s.last_ms >= ?")
            args.append(f.since_ms)
        if f.until_ms is not None:
            where.append("s.first_ms <= ?")
            args.append(f.until_ms)
        if after_seq is not None:
            where.append("s.changed_seq > ?")
            args.append(after_seq)
        limit = max(1, min(f.limit, 500))
        base = "SELECT * FROM stories s" + (" WHERE " + " AND ".join(where) if where else "")
        if not f.q:
            sql = base + " ORDER BY s.last_ms DESC, s.story_id LIMIT ?"
            return [_story_row(r) for r in self._db().execute(sql, [*args, limit])]
        expression = fts_query(f.q)
        if expression is None:
            return []
        # Newest matching articles first (rowids grow with arrival), a page at a time, until
        # enough of their stories pass the other filters: a common word never has every one of its
        # hits materialised.
        db = self._db()
        found: dict[str, dict] = {}
        before = None
        page = max(200, limit * 4)
        while len(found) < limit:
            rows = db.execute(
                "SELECT article_fts.rowid AS rid, a.story_id FROM article_fts JOIN articles a ON a.id = article_fts.rowid "
                "WHERE article_fts MATCH ?" + (" AND article_fts.rowid < ?" if before is not None else "") +
                " ORDER BY article_fts.rowid DESC LIMIT ?",
                [expression, *([before] if before is not None else []), page]).fetchall()
            if not rows:
                break
            before = rows[-1]["rid"]
            candidates = list(dict.fromkeys(r["story_id"] for r in rows if r["story_id"] not in found))
            if candidates:
                marks = ",".join("?" * len(candidates))
                sql = base + (" AND " if where else " WHERE ") + f"s.story_id IN ({marks})"
                for r in db.execute(sql, [*args, *candidates]):
                    found[r["story_id"]] = _story_row(r)
            if len(rows) < page:
                break
        ordered = sorted(found.values(), key=lambda r: (-r["last_seen_ms"], r["story_id"]))
        return ordered[:limit]

    def story(self, story_id: str) -> dict | None:
        db = self._db()
        row = db.execute("SELECT * FROM stories WHERE story_id = ?", (story_id,)).fetchone()
        if row is None:
            return None
        story = _story_row(row)
        story["articles"] = [json.loads(r["record"]) for r in db.execute(
            "SELECT record FROM articles WHERE story_id = ? ORDER BY detected_ms, id", (story_id,))]
        story["deliveries"] = self.deliveries(story_id=story_id)
        return story

    def deliveries(self, story_id: str | None = None, limit: int = 200) -> list[dict]:
        sql = "SELECT * FROM deliveries" + (" WHERE story_id = ?" if story_id else "") + \
              " ORDER BY updated_ms DESC LIMIT ?"
        args: list = [story_id] if story_id else []
        return [dict(r) for r in self._db().execute(sql, [*args, limit])]

    def dead_letters(self, limit: int = 200) -> list[dict]:
        return [{k: r[k] for k in r.keys() if k != "record"}
                for r in self._db().execute("SELECT * FROM dead_letters ORDER BY dead_ms DESC LIMIT ?", (limit,))]

    def dead_letter(self, webhook_id: str) -> AlertDeadLetter | None:
        row = self._db().execute("SELECT record FROM dead_letters WHERE webhook_id = ?", (webhook_id,)).fetchone()
        return None if row is None else decode(row["record"], AlertDeadLetter)

    def feeds(self, now_ms: int) -> list[dict]:
        db = self._db()
        out = []
        for r in db.execute("SELECT * FROM feeds ORDER BY failing DESC, feed_id"):
            data = json.loads(r["record"])
            base = db.execute("SELECT total FROM feed_counts WHERE feed_id = ? AND at_ms >= ? ORDER BY at_ms LIMIT 1",
                              (r["feed_id"], now_ms - DAY_MS)).fetchone()
            before = db.execute("SELECT total FROM feed_counts WHERE feed_id = ? AND at_ms < ? "
                                "ORDER BY at_ms DESC LIMIT 1", (r["feed_id"], now_ms - DAY_MS)).fetchone()
            start = before["total"] if before is not None else (0 if base is None else 0)
            data["articles_24h"] = max(0, int(data.get("articles_total") or 0) - start)
            data["failing"] = bool(r["failing"])
            out.append(data)
        out.sort(key=lambda d: (not d["failing"], (d.get("name") or "").lower()))
        return out

    def history(self, limit: int) -> Iterable[dict]:
        """The newest `limit` stored matches (for a draft pack run)."""
        for r in self._db().execute("SELECT record FROM articles ORDER BY detected_ms DESC LIMIT ?", (limit,)):
            yield json.loads(r["record"])

    def counts(self) -> dict[str, int]:
        db = self._db()
        return {name: db.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
                for name in ("articles", "stories", "deliveries", "dead_letters", "feeds")}


def _like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _story_row(r: sqlite3.Row) -> dict:
    return {"story_id": r["story_id"], "lang": r["lang"], "title": r["title"], "first_seen_ms": r["first_ms"],
            "last_seen_ms": r["last_ms"], "score": r["score"], "topics": r["topics"].split(),
            "sources_count": r["sources_count"], "latest_source": r["latest_source"], "seq": r["changed_seq"]}


def _body_fields(body: str) -> dict:
    try:
        data = json.loads(body)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
