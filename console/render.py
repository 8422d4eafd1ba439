"""Pure helpers for the pages: evidence cut into highlighted segments, times, text direction.

Templates escape every value (Jinja2 autoescape); nothing here builds HTML.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

RTL_LANGS = frozenset({"ar", "fa", "ur", "he", "ps"})


@dataclass(frozen=True)
class Segment:
    """A run of a field's original text; `topics` is empty for text outside any evidence."""

    text: str
    topics: tuple[str, ...] = ()
    start: int = 0


def highlight(text: str, spans: list[tuple[int, int, str]]) -> list[Segment]:
    """`text` cut at every evidence boundary; each piece lists the topics whose evidence covers it.
    Offsets outside the text are clipped; overlapping evidence of several topics is kept apart."""
    size = len(text)
    clean = [(max(0, s), min(size, e), t) for s, e, t in spans if 0 <= s < e and s < size]
    if not clean:
        return [Segment(text)] if text else []
    cuts = sorted({0, size, *(s for s, _, _ in clean), *(e for _, e, _ in clean)})
    segments = []
    for a, b in zip(cuts, cuts[1:]):
        if a == b:
            continue
        covering = tuple(sorted({t for s, e, t in clean if s <= a and b <= e}))
        segments.append(Segment(text[a:b], covering, a))
    return segments


def field_segments(article: dict, field: str) -> list[Segment]:
    """The article's `field` with the evidence of every topic it raised highlighted."""
    spans = [(ev["start"], ev["end"], hit["topic"]) for hit in article.get("topics") or ()
             for ev in hit.get("evidence") or () if ev.get("field") == field]
    return highlight(article.get(field) or "", spans)


def direction(lang: str | None) -> str:
    """dir= for text in `lang`: rtl for Arabic script languages, else let the browser decide."""
    return "rtl" if (lang or "").split("-")[0].lower() in RTL_LANGS else "auto"


def when(value: int | str | datetime | None) -> str:
    """A time for a page, to the second in UTC: epoch ms, a datetime, or an ISO-8601 string as the
    records carry them ("2026-12-03T21:36:05.123456+00:00"); "-" when there is none, and a string
    that is not a time as it is (it is escaped like any other text)."""
    if value is None or value == "":
        return "-"
    if isinstance(value, datetime):
        value = int((value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp() * 1000)
    elif isinstance(value, str):
        try:
            value = parse_time(value)
        except ValueError:
            return value
    return datetime.fromtimestamp(value / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def parse_time(value: str | None) -> int | None:
    """An ISO-8601 date or time (UTC unless it says otherwise) as epoch ms; None when empty."""
    if not value or not value.strip():
        return None
    parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return int(parsed.timestamp() * 1000)
