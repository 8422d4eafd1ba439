"""Near-duplicate story grouping: the same wire story from many feeds gets one `story_id`.

What counts as the same story (docs/processors.md says it for users):
  1. Same language (`lang`, with unknown languages grouped together as "und").
  2. Text: the title plus the first LEAD_WORDS words of the text (or of the summary when there is
     no text) are normalised (case, Arabic diacritics and letter variants, Cyrillic ё, digits of
     any script, punctuation) and cut into overlapping word pairs. Two articles are the same story
     when the estimated Jaccard similarity of their word pairs (MinHash, NUM_PERM permutations) is
     at least the configured `story_similarity` (default 0.5).
  3. Time: a story stays open for `story_window` (default 3 days) after its latest source; after
     that a similar article starts a new story.
An article is compared with each open story's first article (its representative), found through a
MinHash LSH index; the most similar qualifying story wins, ties going to the older story. An article
a story already lists (a replay after a crash) goes back to that story with the sources as they were.
A new story's id is derived from its language and first article id, so a replay of the same
records rebuilds the same ids. Nothing here does I/O: the caller persists `StoryRecord`s.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from types import EllipsisType

from datasketch import LeanMinHash, MinHash, MinHashLSH

from newswatch.schemas import Article, Source

NUM_PERM = 64
LEAD_WORDS = 60
UNKNOWN_LANG = "und"

# Arabic: short vowels, shadda, sukun, superscript alef and tatweel carry no identity for matching.
_ARABIC_MARK_CODES = [*range(0x0610, 0x061B), *range(0x064B, 0x0660), 0x0670, 0x0640, 0x06D6, *range(0x06D7, 0x06EE)]
_ARABIC_MARKS = re.compile("[" + "".join(map(chr, _ARABIC_MARK_CODES)) + "]+")
# Letter variants, and decimal digits of every script in the Basic Multilingual Plane as 0-9 (so
# ٤٠٠ and 400 agree). str.translate with a table this size looks up every character in Python's
# slow path (~25 µs for a 450-character lead), so the letters are replaced one by one when
# present and the digits by one regex pass when the text has any that are not ASCII.
_LETTER_VARIANTS = (("أ", "ا"), ("إ", "ا"), ("آ", "ا"), ("ٱ", "ا"),  # hamza/madda alef forms
                    ("ى", "ي"), ("ة", "ه"), ("ؤ", "و"), ("ئ", "ي"), ("ё", "е"))
_DIGITS = {chr(cp): str(unicodedata.digit(chr(cp))) for cp in range(0x80, 0x10000)
           if chr(cp).isdigit() and unicodedata.digit(chr(cp), None) is not None}
_OTHER_DIGIT = re.compile("[" + "".join(sorted(_DIGITS)) + "]")
_WORD = re.compile(r"[^\W_]+")


def _digit(match: re.Match) -> str:
    return _DIGITS[match[0]]


def normalise(text: str) -> str:
    """Lower-cased, compatibility-folded text with Arabic marks and letter variants unified,
    digits in ASCII and punctuation turned into single spaces."""
    text = unicodedata.normalize("NFKC", text).casefold()
    if not text.isascii():
        text = _ARABIC_MARKS.sub("", text)
        for variant, letter in _LETTER_VARIANTS:
            if variant in text:
                text = text.replace(variant, letter)
        text = _OTHER_DIGIT.sub(_digit, text)
    return " ".join(_WORD.findall(text))


def story_words(title: str, text: str, summary: str = "") -> list[str]:
    """The normalised words that identify a story: the title, then the lead of the body."""
    # Only the lead matters: cut it before normalising (twice the words, since normalising can
    # split a word at punctuation or drop a token that is punctuation only).
    lead_source = " ".join((text or summary).split(maxsplit=2 * LEAD_WORDS)[:2 * LEAD_WORDS])
    lead = normalise(lead_source).split()[:LEAD_WORDS]
    return normalise(title).split() + lead


def word_pairs(words: list[str]) -> set[bytes]:
    """Overlapping word pairs (a single word when that is all there is), as UTF-8 bytes."""
    if len(words) < 2:
        return {w.encode() for w in words}
    return {f"{a} {b}".encode() for a, b in zip(words, words[1:])}


def story_id_for(lang: str, first_article_id: str) -> str:
    """A story's id: stable for the same language and first article, opaque to readers."""
    digest = hashlib.blake2b(f"{lang}\x1f{first_article_id}".encode(), digest_size=10).hexdigest()
    return f"st-{digest}"


def source_of(article: Article) -> Source:
    """The publication of `article` as a story lists it."""
    return Source(article_id=article.id, source=article.source, url=article.url, feed_url=article.feed.url,
                  published_at=article.published_at)


class BandIndex:
    """MinHash LSH banding, as datasketch's MinHashLSH does it (its own choice of bands and rows for
    the threshold), kept in plain dicts: a story is a candidate when any band of its signature
    equals the query's. Same candidates as MinHashLSH, at a fraction of its insert cost (which
    byte-swaps and hashes every band through its storage layer)."""

    def __init__(self, threshold: float, num_perm: int):
        params = MinHashLSH(threshold=threshold, num_perm=num_perm)
        self._ranges = tuple(params.hashranges)
        self._bands: list[dict[bytes, set[str]]] = [{} for _ in self._ranges]
        self._keys: dict[str, list[bytes]] = {}

    def _band_keys(self, signature: LeanMinHash) -> list[bytes]:
        values = signature.hashvalues
        return [values[start:end].tobytes() for start, end in self._ranges]

    def insert(self, key: str, signature: LeanMinHash) -> None:
        bands = self._band_keys(signature)
        self._keys[key] = bands
        for table, band in zip(self._bands, bands):
            table.setdefault(band, set()).add(key)

    def remove(self, key: str) -> None:
        for table, band in zip(self._bands, self._keys.pop(key, ())):
            members = table.get(band)
            if members is not None:
                members.discard(key)
                if not members:
                    del table[band]

    def query(self, signature: LeanMinHash) -> set[str]:
        found: set[str] = set()
        for table, band in zip(self._bands, self._band_keys(signature)):
            members = table.get(band)
            if members:
                found |= members
        return found


class Sketcher:
    """Makes MinHash signatures with one fixed set of permutations (building them is the slow part)."""

    def __init__(self, num_perm: int = NUM_PERM, seed: int = 1):
        prototype = MinHash(num_perm=num_perm, seed=seed)
        self.num_perm = num_perm
        self.seed = seed
        self.scheme = prototype.scheme
        self._permutations = prototype.permutations

    def sketch(self, article: Article) -> LeanMinHash | None:
        """The signature of the article's title and lead; None when it has no words at all."""
        pairs = word_pairs(story_words(article.title, article.text, article.summary))
        if not pairs:
            return None
        minhash = MinHash(num_perm=self.num_perm, seed=self.seed, permutations=self._permutations,
                          scheme=self.scheme)
        minhash.update_batch(list(pairs))
        return LeanMinHash(minhash)

    def signature(self, article: Article) -> tuple[int, ...] | None:
        """The sketch's hash values, as carried from detection to the story stage (Candidate)."""
        sketch = self.sketch(article)
        return None if sketch is None else tuple(sketch.hashvalues.tolist())

    def restore(self, hashvalues: Iterable[int]) -> LeanMinHash:
        return LeanMinHash(seed=self.seed, hashvalues=list(hashvalues), scheme=self.scheme)


@dataclass(frozen=True)
class StoryRecord:
    """What is remembered about an open story (persisted by the caller, keyed by `story_id`)."""

    story_id: str
    lang: str
    signature: tuple[int, ...]
    first_seen_ms: int
    last_seen_ms: int
    sources: tuple[Source, ...]
    partition: int = 0

    def to_json_dict(self) -> dict:
        return {"lang": self.lang, "sig": list(self.signature), "first_ms": self.first_seen_ms,
                "last_ms": self.last_seen_ms, "p": self.partition,
                "sources": [s.model_dump(mode="json") for s in self.sources]}

    @classmethod
    def from_json_dict(cls, story_id: str, data: dict) -> "StoryRecord":
        return cls(story_id=story_id, lang=data["lang"], signature=tuple(data["sig"]),
                   first_seen_ms=data["first_ms"], last_seen_ms=data["last_ms"], partition=data.get("p", 0),
                   sources=tuple(Source.model_validate(s) for s in data["sources"]))


@dataclass(frozen=True)
class StoryAssignment:
    """The story an article belongs to, the sources known up to and including it, and the record
    to persist (None when nothing changed, as on a replay)."""

    story_id: str
    sources: tuple[Source, ...]
    record: StoryRecord | None
    is_new: bool


@dataclass
class StoryIndex:
    """Open stories per language, searchable by MinHash LSH. Mutated only through `assign`,
    `load` and `expire`; the clock (`at_ms`, `now_ms`) is always passed in."""

    sketcher: Sketcher
    similarity: float = 0.5
    window_ms: int = 3 * 86_400_000
    max_sources: int = 50
    _stories: dict[str, StoryRecord] = field(default_factory=dict)
    _signatures: dict[str, LeanMinHash] = field(default_factory=dict)
    _lsh: dict[str, BandIndex] = field(default_factory=dict)
    _by_article: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self._stories)

    def get(self, story_id: str) -> StoryRecord | None:
        return self._stories.get(story_id)

    def load(self, records: Iterable[StoryRecord]) -> None:
        """Forget everything and index `records` (after a restart or a rebalance)."""
        self._stories.clear()
        self._signatures.clear()
        self._lsh.clear()
        self._by_article.clear()
        for record in records:
            self._index(record)

    def _lsh_for(self, lang: str) -> BandIndex:
        if lang not in self._lsh:
            self._lsh[lang] = BandIndex(threshold=self.similarity, num_perm=self.sketcher.num_perm)
        return self._lsh[lang]

    def _index(self, record: StoryRecord, signature: LeanMinHash | None = None) -> None:
        if signature is None:
            signature = self.sketcher.restore(record.signature)
        self._stories[record.story_id] = record
        self._signatures[record.story_id] = signature
        self._lsh_for(record.lang).insert(record.story_id, signature)
        self._by_article.update((source.article_id, record.story_id) for source in record.sources)

    def _drop(self, story_id: str) -> StoryRecord | None:
        record = self._stories.pop(story_id, None)
        if record is not None:
            self._signatures.pop(story_id, None)
            self._lsh[record.lang].remove(story_id)
            for source in record.sources:
                if self._by_article.get(source.article_id) == story_id:
                    del self._by_article[source.article_id]
        return record

    def _find(self, lang: str, signature: LeanMinHash, at_ms: int) -> StoryRecord | None:
        lsh = self._lsh.get(lang)
        if lsh is None:
            return None
        best: tuple[float, int, str] | None = None
        for story_id in lsh.query(signature):
            record = self._stories[story_id]
            if at_ms - record.last_seen_ms > self.window_ms:
                continue
            score = self._signatures[story_id].jaccard(signature)
            if score < self.similarity:
                continue
            # Highest similarity first; on a tie the older story (then the smaller id) wins.
            rank = (-score, record.first_seen_ms, story_id)
            if best is None or rank < best:
                best = rank
        return self._stories[best[2]] if best else None

    def assign(self, article: Article, at_ms: int, partition: int = 0,
               signature: tuple[int, ...] | None | EllipsisType = ...) -> StoryAssignment:
        """Put `article` (seen at stream time `at_ms`) into a story and say which; `partition` is
        the state partition the story's record belongs to. `signature` is the article's sketch
        when it was made already (Sketcher.signature; None for no words), else it is made here.

        Deterministic for a given index state; and when the index already lists the article
        (a replay after a crash), it returns the same story and the sources as they were then.
        """
        lang = article.lang or UNKNOWN_LANG
        values: tuple[int, ...] | None = None
        if signature is ...:
            signature = self.sketcher.sketch(article)
        elif signature is not None:
            values = tuple(signature)
            signature = self.sketcher.restore(values)
        if signature is None:  # nothing to compare: a story of its own
            story_id = story_id_for(lang, article.id)
            return StoryAssignment(story_id, (source_of(article),), None, True)
        # A replay finds the story that already lists the article, whatever was added since.
        known_story = self._by_article.get(article.id)
        record = self._stories[known_story] if known_story else self._find(lang, signature, at_ms)
        if record is None:
            record = StoryRecord(story_id=story_id_for(lang, article.id), lang=lang,
                                 signature=values if values is not None else tuple(signature.hashvalues.tolist()),
                                 first_seen_ms=at_ms, last_seen_ms=at_ms, sources=(source_of(article),),
                                 partition=partition)
            self._index(record, signature)
            return StoryAssignment(record.story_id, record.sources, record, True)
        for position, known in enumerate(record.sources):
            if known.article_id == article.id:
                return StoryAssignment(record.story_id, record.sources[:position + 1], None, False)
        sources = record.sources
        if len(sources) < self.max_sources:
            sources = sources + (source_of(article),)
        updated = replace(record, sources=sources, last_seen_ms=max(record.last_seen_ms, at_ms))
        self._stories[record.story_id] = updated
        self._by_article[article.id] = record.story_id
        return StoryAssignment(updated.story_id, sources, updated, False)

    def expire(self, now_ms: int) -> list[StoryRecord]:
        """Close the stories with no new source within the window; returns them for the caller to delete."""
        stale = [sid for sid, rec in self._stories.items() if now_ms - rec.last_seen_ms > self.window_ms]
        return [record for sid in stale if (record := self._drop(sid)) is not None]
