"""Turn the bytes of one RSS/Atom/RDF document into Article v1 records: pure, no I/O, no clock.

`parse_feed(content, base_url, ...)` refuses documents whose prolog declares entities (before
feedparser sees them: its loose parser would expand them quadratically), then lets feedparser
read RSS 0.9x/1.0/2.0 and Atom; each entry becomes an Article with a stable id (ids.py), HTML
turned into plain text, control characters removed, fields capped, timestamps in UTC and a
language taken from the entry, else the feed (`<language>`, `xml:lang`), else the config hint;
a feed-wide language that the entry's own script contradicts (a wire feed declared "en" that
carries a Russian story) gives way to the script's (see `script_language`).
"""

from __future__ import annotations

import calendar
import codecs
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import feedparser

from newswatch.errors import NewswatchError
from newswatch.schemas import Article, FeedRef

from ingest import ids
from ingest.langid import SAMPLE_CHARS as LANGID_SAMPLE, identify_language

MAX_TAGS = 50
MAX_TAG_CHARS = 100
MAX_AUTHORS = 20
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_SPACES = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r"\n\s*\n\s*(?:\n\s*)*")
_LANG = re.compile(r"^([A-Za-z]{2,3})(?:[-_][A-Za-z0-9]{1,8})*$")


class FeedRefused(NewswatchError):
    """The document is not parsed: `reason` (stable word for logs/metrics) and a detail for people."""

    def __init__(self, reason: str, detail: str):
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")

    def __reduce__(self):  # raised in parser worker processes: must unpickle with its reason
        return (type(self), (self.reason, self.detail))


@dataclass(frozen=True)
class TextCaps:
    title: int = 1000
    text: int = 20_000
    summary: int = 2_000


@dataclass(frozen=True)
class ParsedEntry:
    article: Article
    keys: tuple[str, ...]  # ids.dedupe_keys: the article counts as seen when any of them is


@dataclass(frozen=True)
class ParsedFeed:
    title: str | None
    version: str
    ttl_s: float | None
    entries: tuple[ParsedEntry, ...] = field(default=())
    warning: str | None = None  # feedparser's "bozo" note when the document was recoverable

    @property
    def articles(self) -> list[Article]:
        return [entry.article for entry in self.entries]


# --- entity refusal -----------------------------------------------------------------------

def _as_utf8_for_scanning(content: bytes) -> bytes:
    """UTF-16/32 documents rewritten to UTF-8 so the prolog scan cannot be dodged by encoding."""
    head = content[:4]
    for bom, codec in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                       (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if head.startswith(bom):
            return content.decode(codec, errors="replace").encode("utf-8")
    if b"\x00" in head:
        for pattern, codec in ((b"<\x00\x00\x00", "utf-32-le"), (b"\x00\x00\x00<", "utf-32-be"),
                               (b"<\x00", "utf-16-le"), (b"\x00<", "utf-16-be")):
            if head.startswith(pattern):
                return content.decode(codec, errors="replace").encode("utf-8")
    return content


_ENTITY_DECL = re.compile(rb"<!\s*ENTITY", re.IGNORECASE)


def refuse_entity_declarations(content: bytes) -> None:
    """Raise FeedRefused when the prolog declares entities or carries an internal DTD subset.

    Only the prolog (before the root element) is scanned, skipping comments and processing
    instructions, so an article that talks about `<!ENTITY` in CDATA is still accepted.
    """
    doc = _as_utf8_for_scanning(content)
    if doc.startswith(codecs.BOM_UTF8):
        doc = doc[3:]
    i, n = 0, len(doc)
    while i < n:
        if doc[i:i + 1].isspace():
            i += 1
        elif doc.startswith(b"<?", i):
            end = doc.find(b"?>", i + 2)
            i = n if end < 0 else end + 2
        elif doc.startswith(b"<!--", i):
            end = doc.find(b"-->", i + 4)
            i = n if end < 0 else end + 3
        elif doc[i:i + 9].upper() == b"<!DOCTYPE":
            close, bracket = doc.find(b">", i), doc.find(b"[", i)
            if bracket >= 0 and (close < 0 or bracket < close):
                raise FeedRefused("entity_declaration",
                                  "the DOCTYPE has an internal subset (entity declarations are refused)")
            i = n if close < 0 else close + 1
        elif doc.startswith(b"<", i) and doc[i + 1:i + 2].isalpha():
            return  # the root element: the prolog is clean
        else:
            break  # not XML-shaped; be conservative below
    # Junk before the root (HTML, text, truncated prolog): the loose parser may still honour a
    # declaration anywhere in its head, so refuse any.
    if _ENTITY_DECL.search(doc, 0, min(n, max(i, 0) + 65536)):
        raise FeedRefused("entity_declaration", "the document declares XML entities")


# --- HTML to text -------------------------------------------------------------------------

_BLOCK_TAGS = frozenset("""address article aside blockquote br dd div dl dt figcaption figure footer h1 h2 h3 h4
h5 h6 header hr li main nav ol p pre section table td th tr ul""".split())
_SKIP_TAGS = frozenset({"script", "style", "noscript", "template", "iframe", "object", "svg", "head"})


class _TextExtractor(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip_depth = 0

    def handle_starttag(self, tag, attrs):
        if tag in _SKIP_TAGS:
            self._skip_depth += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_startendtag(self, tag, attrs):
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in _SKIP_TAGS:
            self._skip_depth = max(0, self._skip_depth - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data):
        if not self._skip_depth:
            self.parts.append(data)


def html_to_text(html: str | None) -> str:
    """Plain text of an HTML fragment: tags dropped, entities decoded, paragraphs kept as blank-line
    free newlines, runs of spaces collapsed, control characters removed."""
    if not html:
        return ""
    if "<" in html or "&" in html:
        extractor = _TextExtractor()
        try:
            extractor.feed(html)
            extractor.close()
            text = "".join(extractor.parts)
        except Exception:  # HTMLParser is lenient, but never let one entry sink a feed
            text = re.sub(r"<[^>]*>", " ", html)
    else:
        text = html
    return clean_text(text)


# UTF-8 read as cp1252/Latin-1 and written out again ("Ð¯Ð½Ð´ÐµÐºÑ" for "Яндекс", "Ã©" for "é"):
# a lead byte's character followed by a continuation byte's. Three such pairs trigger a repair.
_MOJIBAKE = re.compile("[\u00c2-\u00df][\u0080-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e"
                       "\u0192\u02c6\u02dc\u2013-\u203a\u20ac\u2122]")


def repair_mojibake(text: str) -> str:
    """`text` with double-encoded UTF-8 undone (ftfy, which changes only what it is sure of);
    the text as it is when it shows no sign of it (the check is one regex, the repair is rare)."""
    if len(_MOJIBAKE.findall(text[:2000])) < 3:
        return text
    import ftfy

    return ftfy.fix_encoding(text)


def clean_text(text: str) -> str:
    text = _CONTROL.sub("", repair_mojibake(text).replace("\r\n", "\n").replace("\r", "\n"))
    text = _SPACES.sub(" ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n", text).strip()


def one_line(text: str) -> str:
    return " ".join(text.split())


def cap(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, at a word boundary when one is near the end."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = max(cut.rfind(" "), cut.rfind("\n"))
    if space >= limit * 0.9:
        cut = cut[:space]
    return cut.rstrip()


# --- fields -------------------------------------------------------------------------------

def normalise_lang(value: str | None) -> str | None:
    """"en-US" -> "en", "AR" -> "ar"; None for anything that is not a language tag."""
    if not value or not isinstance(value, str):
        return None
    match = _LANG.match(value.strip())
    return match[1].lower() if match else None


def _utc(struct) -> datetime | None:
    if not struct:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(struct), tz=timezone.utc)
    except (OverflowError, ValueError, TypeError, OSError):
        return None


def _entry_lang(entry, feed_lang: str | None, hint: str | None, sample: str) -> str | None:
    candidates = [entry.get("language")]
    for key in ("title_detail", "summary_detail"):
        candidates.append((entry.get(key) or {}).get("language"))
    for content in entry.get("content") or ():
        candidates.append(content.get("language"))
    for candidate in candidates:
        lang = normalise_lang(candidate)
        # feedparser copies a feed's xml:lang into each entry's details: the same language as
        # the feed's is inherited, not the entry's own word, and gets the script check below
        if lang and lang != feed_lang:
            return lang  # the entry says so itself
    for candidate in (feed_lang, hint):
        lang = normalise_lang(candidate)
        if lang:
            return script_language(sample, lang)
    return language_of_script(sample)  # nobody said: the text's own words decide


# Scripts of the languages whose feeds are most often mixed with ours; a declared language not
# listed here is never second-guessed, nor one written in two scripts (Serbian, Uzbek, Azerbaijani,
# Kazakh, Kurdish, Mongolian...).
_SCRIPT_OF_LANGUAGE = {
    **dict.fromkeys(("ar", "fa", "ur", "ps", "ckb", "sd"), "arabic"),
    **dict.fromkeys(("ru", "uk", "be", "bg", "mk", "ky", "tg"), "cyrillic"),
    **dict.fromkeys(("en", "fr", "de", "es", "it", "pt", "nl", "tr", "pl", "ro", "id", "ms", "sv", "da",
                     "no", "nb", "fi", "cs", "sk", "hu", "hr", "sl", "vi"), "latin"),
}
_SCRIPT_LETTERS = {
    "arabic": re.compile(r"[\u0620-\u064a\u066e-\u06d3\u06fa-\u06ff\u0750-\u077f\ufb50-\ufdff\ufe70-\ufefc]"),
    "cyrillic": re.compile(r"[\u0400-\u04ff]"),
    "latin": re.compile(r"[A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f]"),
}
_SCRIPT_SAMPLE = 600  # characters of title and body looked at
_SCRIPT_MIN_LETTERS = 20  # fewer letters than this say nothing
_SCRIPT_SHARE = 0.8  # the share of the letters one script must have to overrule a declaration


def dominant_script(sample: str) -> str | None:
    """"arabic", "cyrillic" or "latin" when at least 80% of the letters in the first 600
    characters (20 letters at least) are in that script; None when no script clearly leads."""
    sample = sample[:_SCRIPT_SAMPLE]
    counts = {script: len(letters.findall(sample)) for script, letters in _SCRIPT_LETTERS.items()}
    total = sum(counts.values())
    if total < _SCRIPT_MIN_LETTERS:
        return None
    script, count = max(counts.items(), key=lambda item: item[1])
    return script if count >= _SCRIPT_SHARE * total else None


def language_of_script(sample: str) -> str | None:
    """The language a text of no declared language is taken for: identified from its words among
    the languages of its script (ingest.langid), so always one for Arabic-script and Cyrillic
    texts (never None), and None for Latin text the model is unsure of or a text of no clear script."""
    script = dominant_script(sample)
    return identify_language(sample, script) if script else None


def script_language(sample: str, declared: str) -> str | None:
    """`declared` (a feed's or the config's language for an entry), unless the entry's letters are
    clearly in another script: then the language identified among that script's (ingest.langid:
    ar/fa/ur... for Arabic script, ru/uk/... for Cyrillic, never None for those two; en/fr/...
    or None for Latin). "S-400" in a Russian text or a Russian quote in an English one changes nothing."""
    expected = _SCRIPT_OF_LANGUAGE.get(declared)
    if expected is None:
        return declared
    script = dominant_script(sample)
    if script is None or script == expected:
        return declared
    return identify_language(sample, script)


# Tags of real HTML elements (and comments) in text declared plain: an RSS title carrying
# "&lt;script&gt;…" or "&lt;b&gt;". A bracketed word that is no HTML element ("<S-400>") is text.
_HTML_ELEMENTS = ("a abbr address area article aside audio b base bdi bdo blockquote body br button canvas "
                  "caption cite code col colgroup data dd del details dfn dialog div dl dt em embed fieldset "
                  "figcaption figure font footer form h1 h2 h3 h4 h5 h6 head header hr html i iframe img input "
                  "ins kbd label legend li link main map mark meta nav noscript object ol optgroup option output "
                  "p param picture pre q s samp script section select small source span strike strong style "
                  "sub summary sup svg table tbody td template textarea tfoot th thead time title tr track u "
                  "ul var video wbr").split()
_ESCAPED_MARKUP = re.compile(r"<!--.*?-->|</?(?:%s)(?:\s[^<>]*)?/?>" % "|".join(_HTML_ELEMENTS),
                             re.IGNORECASE | re.DOTALL)
_SCRIPT_BLOCK = re.compile(r"<(script|style|noscript|template)\b[^>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL)


def strip_markup(text: str) -> str:
    """Plain text that carries HTML (escaped in the feed, so declared plain): the tags of HTML
    elements and the contents of script/style blocks removed, every other word kept."""
    if "<" not in text:
        return text
    return _ESCAPED_MARKUP.sub(" ", _SCRIPT_BLOCK.sub(" ", text))


def detail_text(value: str | None, content_type: str | None) -> str:
    """Plain text of a feed text construct: markup is only stripped when it is declared HTML, so a
    plain-text title about "<S-400>" keeps its words."""
    if not value:
        return ""
    if content_type and "html" not in content_type.lower():
        return clean_text(value)
    return html_to_text(value)


def _entry_body(entry) -> tuple[str, str]:
    """(text, summary) as plain text: the full content when the feed carries it, else the summary."""
    summary = detail_text(entry.get("summary"), (entry.get("summary_detail") or {}).get("type"))
    text = ""
    for content in entry.get("content") or ():
        if content.get("value"):
            text = detail_text(content["value"], content.get("type"))
            break
    return text or summary, summary


def _unique(values, limit: int, max_chars: int) -> tuple[str, ...]:
    out: list[str] = []
    for value in values:
        value = one_line(_CONTROL.sub("", value or ""))[:max_chars]
        if value and value not in out:
            out.append(value)
        if len(out) >= limit:
            break
    return tuple(out)


def _ttl_seconds(feed) -> float | None:
    raw = str(feed.get("ttl") or "").strip()
    return float(raw) * 60 if raw.isdigit() else None  # RSS ttl is in minutes


def parse_feed(content: bytes, base_url: str, *, fetched_at: datetime, feed_url: str | None = None,
               feed_name: str | None = None, lang_hint: str | None = None, tags: tuple[str, ...] = (),
               content_type: str | None = None, caps: TextCaps = TextCaps()) -> ParsedFeed:
    """Every entry of the document as an Article, in document order; FeedRefused when it is refused
    or is not a feed at all. `base_url` resolves relative links; `feed_url` (default `base_url`)
    is the configured feed address recorded in `Article.feed.url`."""
    feed_url = feed_url or base_url
    refuse_entity_declarations(content)
    # Without a Content-Type feedparser flags every document as suspect; XML is what a feed claims to be.
    headers = {"content-location": base_url, "content-type": content_type or "application/xml"}
    try:
        # HTML is turned into text here, so feedparser's sanitiser and URI rewriting are wasted work.
        parsed = feedparser.parse(content, response_headers=headers, sanitize_html=False,
                                  resolve_relative_uris=False)
    except Exception as exc:  # feedparser is meant never to raise, but this is untrusted input
        raise FeedRefused("parse_error", f"{type(exc).__name__}: {exc}") from None
    feed = parsed.get("feed") or {}
    version = parsed.get("version") or ""
    warning = str(parsed.get("bozo_exception")) if parsed.get("bozo") else None
    if not version and not parsed.get("entries"):
        looks = "an HTML page" if b"<html" in content[:2048].lower() else "not RSS, Atom or RDF"
        raise FeedRefused("not_a_feed", looks + (f" ({warning})" if warning else ""))
    feed_title = one_line(detail_text(feed.get("title"), (feed.get("title_detail") or {}).get("type"))) or None
    feed_lang = normalise_lang(feed.get("language"))
    source = feed_name or feed_title or urlsplit(feed_url).hostname
    feed_ref = FeedRef(url=feed_url, title=feed_title or feed_name)

    drafts = []
    for entry in parsed.get("entries") or ():
        link = entry.get("link")
        link = urljoin(base_url, link.strip()) if isinstance(link, str) and link.strip() else None
        # A title is text: markup in it, declared or escaped, is dropped and its words kept.
        title = cap(one_line(strip_markup(detail_text(entry.get("title"),
                                                      (entry.get("title_detail") or {}).get("type")))), caps.title)
        text, summary = _entry_body(entry)
        if not (title or text or link):
            continue
        published = _utc(entry.get("published_parsed") or entry.get("updated_parsed")
                         or entry.get("created_parsed"))
        guid = entry.get("id") if isinstance(entry.get("id"), str) else None
        article_id = ids.article_id(guid=guid, link=link, title=title, published=published, feed_url=feed_url)
        authors = [a.get("name") or a.get("email") for a in entry.get("authors") or () if isinstance(a, dict)]
        if not authors and entry.get("author"):
            authors = [entry["author"]]
        entry_tags = [t.get("term") or t.get("label") for t in entry.get("tags") or () if isinstance(t, dict)]
        article = Article(
            id=article_id, url=link, title=title, text=cap(text, caps.text), summary=cap(summary, caps.summary),
            lang=_entry_lang(entry, feed_lang, lang_hint, f"{title} {text[:LANGID_SAMPLE]}"),
            published_at=published, fetched_at=fetched_at,
            feed=feed_ref, source=source, authors=_unique(authors, MAX_AUTHORS, 200),
            tags=_unique([*tags, *entry_tags], MAX_TAGS, MAX_TAG_CHARS), text_source="feed")
        drafts.append(article)

    link_counts = Counter(ids.canonical_link(a.url) for a in drafts if a.url)
    entries = []
    seen_ids: set[str] = set()
    for article in drafts:
        if article.id in seen_ids:  # the same entry twice in one document
            continue
        seen_ids.add(article.id)
        shared = link_counts.get(ids.canonical_link(article.url), 0) > 1 if article.url else False
        entries.append(ParsedEntry(article, ids.dedupe_keys(article.id, article.url, shared)))
    return ParsedFeed(title=feed_title, version=version, ttl_s=_ttl_seconds(feed), entries=tuple(entries),
                      warning=warning)
