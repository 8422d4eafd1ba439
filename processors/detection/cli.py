"""`newswatch detect`: run the detector offline over JSON-lines files, feed files, feed URLs or
plain-text articles.

A JSON-lines input has one article `{id, lang, title, text}` per line (other fields ignored); a
file that starts with `<` is read as an RSS/Atom feed, and an http(s) URL is fetched, both
exactly as `newswatch fetch` (and so ingest) would turn them into articles. Any other file whose
first character is not `{` is one article: its first line the title, the rest the text, its
name the id, its language taken from its script (Arabic, Cyrillic) or else unknown. Output is one
JSON line per article (its topics, and the gazetteer's entities and arms-deal parties), `--format
table` for people, or with `--eval` a precision/recall/F1 report against each line's `labels`
(topic ids) and, per entity type and language, against its `countries`, `systems` and `parties`
({supplier, recipient} or null) where given. A line's `published_at` dates the offices of persons.
Bad lines are reported with file:line and skipped; the
command then exits 1 after processing everything else.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Iterable, Iterator

import click

from newswatch.config import SEEDS_DIR
from newswatch.schemas import dumps
from processors.detection.engine import detect as detect_topics
from processors.detection.evaluate import (ALL, format_entity_report, format_report, score_entities,
                                           score_labelled)
from processors.detection.watchlist import Watchlist, load_watchlists

DEFAULT_WATCHLISTS = SEEDS_DIR / "watchlists"


@dataclass(frozen=True)
class InputArticle:
    """The fields detect() reads, from one JSON line."""

    id: str
    title: str
    text: str
    lang: str | None
    summary: str = ""
    labels: frozenset[str] | None = None
    published_at: datetime | None = None
    # Gold entities for --eval: entity type -> expected ids (a type absent: not labelled).
    gold: tuple[tuple[str, frozenset[str]], ...] = ()


class BadLine(ValueError):
    """One input line that is not an article; `where` is file:line."""

    def __init__(self, where: str, reason: str):
        self.where = where
        super().__init__(f"{where}: {reason}")


def parse_line(raw: str, where: str) -> InputArticle:
    """One JSON line -> InputArticle, or BadLine saying what is wrong."""
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise BadLine(where, f"not JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(data, dict):
        raise BadLine(where, f"expected a JSON object, got {type(data).__name__}")
    if not isinstance(data.get("id"), (str, int)) or data.get("id") == "":
        raise BadLine(where, "missing 'id'")
    for name in ("title", "text", "summary"):
        if data.get(name) is not None and not isinstance(data[name], str):
            raise BadLine(where, f"'{name}' must be a string")
    if not (data.get("title") or data.get("text") or data.get("summary")):
        raise BadLine(where, "no 'title', 'text' or 'summary' to search")
    labels = data.get("labels")
    if labels is not None and not (isinstance(labels, list) and all(isinstance(x, str) for x in labels)):
        raise BadLine(where, "'labels' must be a list of topic ids")
    lang = data.get("lang")
    published = None
    if data.get("published_at") is not None:
        try:
            published = datetime.fromisoformat(str(data["published_at"]).replace("Z", "+00:00"))
        except ValueError:
            raise BadLine(where, "'published_at' must be an ISO-8601 time") from None
    gold = []
    for key, kind in (("countries", "country"), ("systems", "system")):
        if key in data:
            values = data[key]
            if not (isinstance(values, list) and all(isinstance(x, str) for x in values)):
                raise BadLine(where, f"'{key}' must be a list of ids")
            gold.append((kind, frozenset(values)))
    if "parties" in data:
        parties = data["parties"]
        if parties is None:
            gold.append(("party", frozenset()))
        elif isinstance(parties, dict) and set(parties) == {"supplier", "recipient"} and \
                all(isinstance(v, str) for v in parties.values()):
            gold.append(("party", frozenset({f"{parties['supplier']}>{parties['recipient']}"})))
        else:
            raise BadLine(where, "'parties' must be null or {supplier, recipient} country codes")
    return InputArticle(str(data["id"]), data.get("title") or "", data.get("text") or "",
                        lang if isinstance(lang, str) else None, data.get("summary") or "",
                        frozenset(labels) if labels is not None else None, published, tuple(gold))


def read_articles(lines: Iterable[str], name: str, errors: list[str]) -> Iterator[InputArticle]:
    """Articles from JSON lines; bad lines go to `errors` (as file:line: reason) and are skipped."""
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            yield parse_line(raw, f"{name}:{number}")
        except BadLine as exc:
            errors.append(str(exc))


def _open_input(name: str, errors: list[str], allow_private_networks: bool = False,
                fetch_pages: bool = False) -> Iterator[InputArticle]:
    if name == "-":
        yield from read_articles(sys.stdin, "<stdin>", errors)
        return
    path = Path(name)
    if "://" in name or _looks_like_xml(path):
        yield from _feed_articles(name, errors, allow_private_networks, fetch_pages)
        return
    if not path.exists() or path.is_dir():
        errors.append(f"{name}: no such file")
        return
    with path.open(encoding="utf-8", errors="replace") as handle:
        first = handle.read(4096).lstrip("\ufeff \t\r\n")[:1]
        handle.seek(0)
        if first in ("{", ""):
            yield from read_articles(handle, name, errors)
        else:
            yield _text_article(path.name, handle.read())


def _text_article(name: str, content: str) -> InputArticle:
    """A plain-text file as one article: first non-empty line the title, the rest the text."""
    from ingest.parse import language_of_script

    content = content.lstrip("\ufeff \t\r\n")
    title, _, text = content.partition("\n")
    return InputArticle(id=name, title=title.strip(), text=text.strip(), lang=language_of_script(content))


def _looks_like_xml(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            head = handle.read(512)
    except OSError:
        return False
    return head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<")


def _feed_articles(name: str, errors: list[str], allow_private_networks: bool,
                   fetch_pages: bool = False) -> Iterator[InputArticle]:
    """Articles from a feed file or URL, as ingest would make them (parsed with ingest's parser;
    with `fetch_pages`, short entries get their page's text as ingest's full_text: auto gives it)."""
    from datetime import datetime, timezone

    from ingest.cli import pages_summary, read_feed, read_pages
    from ingest.settings import IngestSettings
    from newswatch.errors import NewswatchError

    try:
        settings = IngestSettings(allow_private_networks=allow_private_networks)
        parsed = read_feed(name, settings, datetime.now(timezone.utc))
    except NewswatchError as exc:
        errors.append(str(exc))
        return
    articles = parsed.articles
    if fetch_pages:
        articles, outcomes = read_pages(articles, settings)
        click.echo(f"{name}: {pages_summary(articles, outcomes)}", err=True)
    for article in articles:
        yield InputArticle(id=article.id, title=article.title, text=article.text, lang=article.lang,
                           summary=article.summary, published_at=article.published_at)


def _hit_json(hit) -> dict:
    return {"topic": hit.topic, "score": hit.score, "rule": hit.rule,
            "evidence": [e.model_dump() for e in hit.evidence]}


def _entities_line(detected) -> str:
    """"countries EG, RU; systems S-400; persons Sergey Lavrov (foreign minister, RU); parties RU -> EG"."""
    parts = []
    for kind, label in (("country", "countries"), ("system", "systems"), ("person", "persons")):
        names = []
        for entity in getattr(detected, "entities", ()):
            if entity["type"] != kind:
                continue
            if kind == "person":
                office = f" ({entity['office']}, {entity['country']})" if entity.get("office") else ""
                names.append(entity["name"] + office)
            else:
                names.append(entity["id"])
        if names:
            parts.append(f"{label} {', '.join(names)}")
    parties = getattr(detected, "parties", None)
    if parties:
        parts.append(f"parties {parties['supplier']} -> {parties['recipient']}")
    return "; ".join(parts)


TABLE_HEADER = ("id", "topic", "score", "rule", "evidence")


def _table_rows(article: InputArticle, hits) -> list[tuple[str, ...]]:
    """One row (id, topic, score, rule, evidence) per hit, a row of dashes for an article without,
    then one "entities:" row when the article names any."""
    rows = [(article.id, hit.topic, f"{hit.score:.2f}", hit.rule, ", ".join(dict.fromkeys(e.term for e in hit.evidence)))
            for hit in hits] or [(article.id, "-", "", "", "")]
    entities = _entities_line(hits)
    if entities:
        rows.append(("", "entities:", "", "", entities))
    return rows


def format_table(rows: list[tuple[str, ...]]) -> list[str]:
    """The rows under TABLE_HEADER, each column as wide as its longest cell (score right-aligned)."""
    table = [TABLE_HEADER, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(TABLE_HEADER) - 1)]
    lines = []
    for row in table:
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1]), row[2].rjust(widths[2]), row[3].ljust(widths[3])]
        lines.append((" ".join(cells[:3]) + "  " + cells[3] + " " + row[4]).rstrip())
    return lines


def _found_ids(detected, kind: str) -> frozenset[str]:
    if kind == "party":
        parties = getattr(detected, "parties", None)
        return frozenset({f"{parties['supplier']}>{parties['recipient']}"}) if parties else frozenset()
    return frozenset(e["id"] for e in getattr(detected, "entities", ()) if e["type"] == kind)


@click.command("detect")
@click.argument("inputs", nargs=-1, required=True)
@click.option("--watchlists", "watchlists_path", type=click.Path(path_type=Path), default=DEFAULT_WATCHLISTS,
              show_default="seeds/watchlists", help="folder of topic packs (or one pack file)")
@click.option("--format", "output_format", type=click.Choice(["json", "table"]), default="json", show_default=True)
@click.option("--eval", "evaluate", is_flag=True,
              help="inputs carry `labels`; print precision, recall and F1 per topic and language")
@click.option("--allow-private-networks", is_flag=True,
              help="let feed URLs reach loopback/private addresses (refused by default, as in ingest)")
@click.option("--fetch-pages", is_flag=True,
              help="for feed inputs: fetch the page of each entry whose feed text is short and detect on "
                   "the page's text, as ingest does (full_text: auto)")
def detect(inputs: tuple[str, ...], watchlists_path: Path, output_format: str, evaluate: bool,
           allow_private_networks: bool, fetch_pages: bool) -> None:
    """Run the detector offline over INPUT... (JSON-lines files, feed files or URLs, plain-text
    articles; - is stdin)."""
    watchlist: Watchlist = load_watchlists(watchlists_path)
    errors: list[str] = []
    results = []
    mismatches: list[str] = []
    out = sys.stdout
    table_rows: list[tuple[str, ...]] = []  # printed at the end, with columns as wide as their cells
    entity_rows: list[tuple[str | None, str, frozenset[str], frozenset[str]]] = []
    for name in inputs:
        for article in _open_input(name, errors, allow_private_networks, fetch_pages):
            # Entities for every article here (the worker finds them only with a topic).
            hits = detect_topics(article, watchlist, all_entities=True)
            if evaluate:
                if article.labels is None and not article.gold:
                    errors.append(f"{name}: article {article.id!r} has no 'labels' nor gold entities "
                                  f"(needed by --eval)")
                    continue
                for kind, expected in article.gold:
                    found = _found_ids(hits, kind)
                    entity_rows.append((article.lang, kind, expected, found))
                    mismatches.extend(f"{verdict} {kind + ' ' + value:<20} {article.id}: {article.title[:70]}"
                                      for verdict, values in (("missed", expected - found), ("wrong ", found - expected))
                                      for value in sorted(values))
                if article.labels is None:
                    continue
                detected = frozenset(h.topic for h in hits)
                results.append((article.lang, article.labels, detected))
                mismatches.extend(f"{kind} {topic:<20} {article.id}: {article.title[:70]}"
                                  for kind, topics in (("missed", article.labels - detected),
                                                       ("wrong ", detected - article.labels))
                                  for topic in sorted(topics))
            elif output_format == "table":
                table_rows.extend(_table_rows(article, hits))
            else:
                record = {"id": article.id, "topics": [_hit_json(h) for h in hits],
                          "entities": list(getattr(hits, "entities", ()))}
                if getattr(hits, "parties", None):
                    record["parties"] = hits.parties
                out.write(dumps(record) + "\n")
    if output_format == "table" and not evaluate:
        out.write("".join(line + "\n" for line in format_table(table_rows)))
    if evaluate:
        if results:
            table = score_labelled(results, [t.id for t in watchlist.topics])
            out.write(format_report(table) + "\n")
            out.write(f"{len(results)} articles, watchlist {watchlist.version}, "
                      f"overall F1 {table[(ALL, ALL)].f1:.3f}\n")
        if entity_rows:
            out.write(("\n" if results else "") + format_entity_report(score_entities(entity_rows)) + "\n")
            out.write(f"{len(entity_rows)} entity labels (article x type), watchlist {watchlist.version}\n")
        if mismatches:
            out.write(f"\n{len(mismatches)} mismatch(es):\n" + "\n".join(mismatches) + "\n")
    for error in errors:
        click.echo(f"newswatch detect: {error}", err=True)
    if errors:
        sys.exit(1)
