"""The main text of an article page, and what the page says about its date and authors: pure.

`extract_page(content, url, ...)` hands the page to trafilatura (paragraphs kept; navigation,
"related" blocks, share buttons, comments and cookie banners dropped) and returns a `PageText`
whose text is plain text cleaned like a feed body (ingest.parse.clean_text). A page that is not
HTML, or in which no article text is found, is a `PageRefused` with a stable `reason`.

Why trafilatura and not readability-lxml: on the 30 pages of tests/data/pages (ar/en/ru in
three site layouts, each with watchlist terms in its menus, sidebars and comments) both keep
every sentence of the story and let no boilerplate term raise a topic, and readability is
several times cheaper (`bench/extract_quality.py` prints both side by side, with the CPU per
page). trafilatura wins on what else it reads: the page's publication date and byline (which
fill fields a feed left empty), a precision mode and a cap on the tree it walks; a page costs
tens of milliseconds of one worker process, next to seconds of network wait.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone

from newswatch.errors import NewswatchError

from ingest.parse import cap, clean_text, one_line

# trafilatura's own cap on the number of elements it will look at; bigger trees are refused
# rather than walked (a page of 5,000 nested divs is well under it, and is bounded by the
# worker's time budget besides).
MAX_TREE_ELEMENTS = 50_000
MIN_TEXT_CHARS = 40  # less than this is not an article's text
_HTML_TYPES = ("text/html", "application/xhtml+xml")
_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")


class PageRefused(NewswatchError):
    """No article text from this page: `reason` (stable, for logs and metrics) and a detail."""

    def __init__(self, reason: str, detail: str):
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")

    def __reduce__(self):  # raised in worker processes: must unpickle with its reason
        return (type(self), (self.reason, self.detail))


@dataclass(frozen=True)
class PageText:
    text: str
    title: str | None = None
    published_at: datetime | None = None  # only when the page gives a date (midnight UTC of that day)
    authors: tuple[str, ...] = field(default=())


def looks_like_html(content: bytes, content_type: str | None) -> bool:
    """An HTML page by its Content-Type, or (no usable type) by its first bytes."""
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind in _HTML_TYPES:
        return True
    if kind and kind not in ("application/octet-stream", "text/plain"):
        return False
    head = content[:1024].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html")) or b"<body" in head


def extract_page(content: bytes, url: str | None = None, *, content_type: str | None = None,
                 max_chars: int = 20_000) -> PageText:
    """The article text of one HTML page (plain text, paragraphs as lines, cut to `max_chars`)."""
    import trafilatura  # imported here: only the worker processes that extract pay for it

    if not looks_like_html(content, content_type):
        raise PageRefused("not_html", f"content type {content_type or 'unknown'!r} is not an HTML page")
    try:
        document = trafilatura.bare_extraction(
            content, url=url, with_metadata=True, include_comments=False, include_tables=False,
            include_images=False, include_links=False, favor_precision=True, deduplicate=False,
            config=_config())
    except RecursionError:
        raise PageRefused("too_deep", "the page nests its elements too deeply to read") from None
    except Exception as exc:  # an extractor bug on hostile input must not sink the article
        raise PageRefused("extract_error", f"{type(exc).__name__}: {exc}"[:300]) from None
    text = clean_text(document.text or "") if document is not None else ""
    if len(text) < MIN_TEXT_CHARS:
        raise PageRefused("no_text", "no article text found on the page")
    return PageText(text=cap(text, max_chars), title=one_line(document.title or "") or None,
                    published_at=page_date(document.date), authors=page_authors(document.author))


@functools.cache
def _config():
    """trafilatura's settings with its own timer off (it uses SIGALRM, which only works in a main
    thread; the worker's time budget bounds us instead) and a cap on the tree it will walk."""
    from trafilatura.settings import use_config

    config = use_config()
    config.set("DEFAULT", "EXTRACTION_TIMEOUT", "0")
    config.set("DEFAULT", "MAX_TREE_SIZE", str(MAX_TREE_ELEMENTS))
    return config


def page_date(value: str | None) -> datetime | None:
    """trafilatura's "YYYY-MM-DD" as midnight UTC of that day; None for anything else."""
    match = _DATE.match(value or "")
    if not match:
        return None
    try:
        return datetime(int(match[1]), int(match[2]), int(match[3]), tzinfo=timezone.utc)
    except ValueError:
        return None


def page_authors(value: str | None) -> tuple[str, ...]:
    """trafilatura joins several authors with "; "."""
    names = [one_line(name)[:200] for name in (value or "").split(";")]
    return tuple(dict.fromkeys(name for name in names if name))[:20]
