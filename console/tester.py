"""The rule tester: a pasted text under the live watchlists, and a draft pack over stored history.

`LiveWatchlists` reloads the packs when a file changes (as the processors do). `run_draft` compiles
pasted YAML as the file `draft.yaml` (errors carry draft.yaml:line:column, as `newswatch check`
prints them) and compares, per topic of the draft, what it raises over the stored matches with
what the live packs raised for them: added (the draft raises it, live did not) and dropped.
Stored history holds matched articles only, so "added" is among articles some live topic caught.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

from ingest.langid import identify_language
from newswatch.errors import ConfigError, ConfigProblem
from processors.detection.engine import detect
from processors.detection.watchlist import Watchlist, load_watchlists

DRAFT_NAME = "draft.yaml"


class LiveWatchlists:
    def __init__(self, path: Path | None):
        self.path = path
        self._stamp: tuple | None = None
        self._watchlist: Watchlist | None = None
        self.error: str | None = None

    def _current_stamp(self) -> tuple:
        if self.path is None or not self.path.exists():
            return ()
        files = sorted(self.path.glob("*.y*ml")) if self.path.is_dir() else [self.path]
        return tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files)

    def get(self) -> Watchlist | None:
        stamp = self._current_stamp()
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self._watchlist = load_watchlists(self.path) if self.path is not None else None
                self.error = None
            except ConfigError as exc:
                self.error = str(exc)  # keep the last good packs, as the processors do
        return self._watchlist


def guess_lang(text: str) -> str | None:
    for char in text:
        if "\u0600" <= char <= "\u06ff":
            return identify_language(text, "arabic")
        if "\u0400" <= char <= "\u04ff":
            return identify_language(text, "cyrillic")
    return identify_language(text, "latin") if text.strip() else None


async def fetch_text(url: str, settings) -> tuple[str, str]:
    """(title, text) of an article page, read as ingest reads pages: its guarded fetch (address
    guard, size and time limits, checked redirects) and its extractor. ValueError with a short
    reason when the page cannot be had."""
    import asyncio

    from ingest.extract import PageRefused, extract_page
    from ingest.fetch import FetchError, fetch_feed
    from ingest.pages import page_limits
    from ingest.poller import build_client

    async with build_client(settings) as client:
        try:
            response = await fetch_feed(client, url, limits=page_limits(settings))
        except FetchError as exc:
            raise ValueError(f"{exc.reason}: {exc.detail}"[:300]) from None
    if not response.is_success:
        raise ValueError(f"http_{response.status}: the server answered HTTP {response.status}")
    try:
        page = await asyncio.to_thread(extract_page, response.content, response.url,
                                       content_type=response.content_type, max_chars=settings.max_text_chars)
    except PageRefused as exc:
        raise ValueError(f"{exc.reason}: {exc.detail}"[:300]) from None
    return page.title or "", page.text


def test_text(watchlist: Watchlist, title: str, text: str, lang: str | None) -> dict:
    """Topics, rules and evidence for a pasted title and text."""
    lang = lang or guess_lang(f"{title}\n{text}")
    article = SimpleNamespace(title=title, text=text, summary="", lang=lang)
    hits = detect(article, watchlist)
    return {"lang": lang, "title": title, "text": text, "summary": "", "watchlist_version": watchlist.version,
            "topics": [h.model_dump(mode="json") for h in hits]}


@dataclass
class DraftResult:
    problems: list[str] = field(default_factory=list)
    topics: dict[str, dict[str, list[dict]]] = field(default_factory=dict)  # topic -> added/dropped -> stories
    scanned: int = 0


def compile_draft(yaml_text: str) -> tuple[Watchlist | None, list[str]]:
    with tempfile.TemporaryDirectory(prefix="newswatch-draft-") as folder:
        path = Path(folder) / DRAFT_NAME
        path.write_text(yaml_text, encoding="utf-8")
        try:
            return load_watchlists(path), []
        except ConfigError as exc:
            return None, [str(_renamed(p, str(path))) for p in exc.problems]


def _renamed(problem: ConfigProblem, temp: str) -> ConfigProblem:
    file = DRAFT_NAME if problem.file == temp else problem.file
    return ConfigProblem(file, problem.line, problem.column, problem.key, problem.message.replace(temp, DRAFT_NAME))


def run_draft(yaml_text: str, history: Iterable[dict]) -> DraftResult:
    draft, problems = compile_draft(yaml_text)
    result = DraftResult(problems=problems)
    if draft is None:
        return result
    draft_topics = [t.id for t in draft.topics]
    seen: dict[str, set[tuple[str, str]]] = {t: set() for t in draft_topics}
    result.topics = {t: {"added": [], "dropped": []} for t in draft_topics}
    for record in history:
        result.scanned += 1
        article = SimpleNamespace(title=record.get("title") or "", text=record.get("text") or "",
                                  summary=record.get("summary") or "", lang=record.get("lang"))
        now = {h.topic for h in detect(article, draft)}
        live = {t["topic"] for t in record.get("topics") or ()}
        for topic in draft_topics:
            change = "added" if topic in now and topic not in live else \
                "dropped" if topic in live and topic not in now else None
            if change is None or (change, record["story_id"]) in seen[topic]:
                continue
            seen[topic].add((change, record["story_id"]))
            result.topics[topic][change].append({"story_id": record["story_id"], "title": record.get("title") or "",
                                                 "lang": record.get("lang"), "article_id": record["id"]})
    return result
