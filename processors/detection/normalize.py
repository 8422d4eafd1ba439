"""Text normalisation shared by watchlist terms and article text, with a map back to the original.

`normalize(text)` returns a `Normalized` whose `.text` is what the matcher searches and whose
`.span(start, end)` turns a match in it back into offsets of the ORIGINAL string. Rules, in order:

1. Decomposed input is composed first (NFC), so `и` + U+0306 is `й` like everywhere else.
2. Dropped: Arabic diacritics (harakat, tanween, shadda, sukun, dagger alef, Quranic marks),
   tatweel, combining accents, soft hyphens and invisible format characters (ZWSP, ZWJ/ZWNJ,
   LRM/RLM, bidi embeddings, BOM).
3. Compatibility forms are folded (NFKC): presentation-form ligatures, full-width letters,
   mathematical letters, `…`, `№`; Latin accents are removed (é -> e).
4. Case is folded (`lower()`), and: أ إ آ ٱ -> ا; ى and Persian ی -> ي; ة -> ه; ؤ -> و; ئ -> ي;
   Persian ک -> ك; ё -> е; Arabic-Indic and Persian digits -> ASCII digits.
5. Every dash, hyphen, minus and no-break/odd space becomes one plain space (so S-400 = S 400 =
   S‑400), line breaks become "\\n", runs of spaces collapse to one, and typographic
   apostrophes (’ ‘ ʼ) become "'".
6. Model codes (1-3 letters then a number: S-400, С-400, HQ-9, Ѕ400) match with or without the
   separator and with their letters written in Latin or as Cyrillic lookalikes (С/Ѕ -> s, М -> m).
   This is done on the term side (`code_variants`), so ordinary words in the text are never
   rewritten and the per-article cost is nil.

The same function normalises terms, so a term matches exactly the texts that normalise like it.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from dataclasses import dataclass
from functools import lru_cache

# Bump when any rule above changes: it is part of the watchlist version, because the same
# watchlist compiled by different rules can match differently.
NORMALIZATION_VERSION = "3"

_DROP = (
    "\u0610-\u061a"  # Arabic honorific and Quranic signs
    "\u064b-\u065f"  # harakat, tanween, shadda, sukun, hamza marks
    "\u0670"  # dagger (superscript) alef
    "\u06d6-\u06dc\u06df-\u06e4\u06e7\u06e8\u06ea-\u06ed"  # Quranic annotation marks
    "\u0640"  # tatweel
    "\u0300-\u036f"  # combining diacritical marks (decomposed Latin/Cyrillic accents)
    "\u00ad"  # soft hyphen
    "\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff"  # invisible format chars
)
_MATH_FIRST, _MATH_LAST = 0x1D400, 0x1D7FF  # mathematical letters and digits (𝐒-𝟒𝟎𝟎)
_DROP_ONE = re.compile(f"[{_DROP}]")
# The same characters as a set, for the per-evidence check (every range of _DROP lies below U+2070
# except the BOM).
_DROPPED = frozenset(c for c in map(chr, [*range(0x00A0, 0x2070), 0xFEFF]) if _DROP_ONE.match(c))

# One-to-one replacements applied to the whole (lower-cased) text with C-speed str.replace.
_SPACE_CHARS = ("\t\r\v\f\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
                "\u2009\u200a\u202f\u205f\u3000-\u2010\u2011\u2012\u2013\u2014\u2015\u2212"
                "\ufe58\ufe63\uff0d\u2043")
_SIMPLE_MAP: dict[str, str] = {
    "\u0622": "\u0627", "\u0623": "\u0627", "\u0625": "\u0627", "\u0671": "\u0627",  # alef variants
    "\u0672": "\u0627", "\u0673": "\u0627",
    "\u0649": "\u064a", "\u06cc": "\u064a", "\u0626": "\u064a",  # alef maksura, Persian yeh, yeh-hamza
    "\u0629": "\u0647",  # ta marbuta
    "\u0624": "\u0648",  # waw-hamza
    "\u06a9": "\u0643",  # Persian kaf
    "\u0451": "\u0435",  # ё
    "\u2028": "\n", "\u2029": "\n", "\x85": "\n",
    "\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u2032": "'",  # apostrophes: David’s Sling
    **{c: " " for c in _SPACE_CHARS},
    **{chr(0x0660 + d): str(d) for d in range(10)},  # Arabic-Indic digits
    **{chr(0x06F0 + d): str(d) for d in range(10)},  # Persian digits
}
_SIMPLE_TABLE = str.maketrans(_SIMPLE_MAP)
# Each str.replace costs a scan of the whole text even when the character is absent, so only
# the characters news copy really has are replaced that way; the rest of the map joins the
# rare characters of `_unusual()`, whose single regex scan finds them all at once.
_COMMON = frozenset("\u0622\u0623\u0625\u0671\u0649\u06cc\u0626\u0629\u0624\u06a9\u0451"
                    "\u2019\u2018\t\r\v\f\u00a0\u202f\u2009-\u2010\u2011\u2013\u2014\u2212")
_SIMPLE_ITEMS = tuple((c, r) for c, r in _SIMPLE_MAP.items() if c in _COMMON)
_ASCII_SPACES = tuple(c for c in _SIMPLE_MAP if c.isascii())

# Cyrillic (and a few Greek) letters read as Latin inside model codes.
_CODE_LETTERS: dict[str, str] = {
    "а": "a", "в": "b", "е": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p",
    "с": "s", "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ј": "j", "ԛ": "q", "ԝ": "w",
    "ο": "o", "α": "a", "ν": "v", "τ": "t", "κ": "k", "μ": "m",
}
_CODE_LOOKALIKES: dict[str, tuple[str, ...]] = {}
for _cyr, _lat in _CODE_LETTERS.items():
    _CODE_LOOKALIKES.setdefault(_lat, (_lat,))
    _CODE_LOOKALIKES[_lat] += (_cyr,)
for _cyr, _lat in _CODE_LETTERS.items():
    _CODE_LOOKALIKES[_cyr] = _CODE_LOOKALIKES[_lat]
# A model code after normalisation: 1-3 letters, an optional space, a number ("s 400", "hq 9").
_CODE_RE = re.compile(r"^([^\W\d_]{1,3}) ?(\d+)(.*)$")


def _fold_char(char: str) -> str:
    """The full fold of one character (rules 3-5), used to build the table of rare characters."""
    out = unicodedata.normalize("NFKC", char)
    if any("LATIN" in unicodedata.name(c, "") for c in out):
        out = "".join(c for c in unicodedata.normalize("NFD", out) if not unicodedata.combining(c))
    out = out.lower()
    out = _DROP_ONE.sub("", out)
    return out.translate(_SIMPLE_TABLE)


@lru_cache(maxsize=1)
def _unusual() -> tuple[dict[str, str], re.Pattern[str]]:
    """Characters the cheap path (lower() + the simple map) gets wrong, with their full fold.

    Returns the fold of each (dropped characters fold to "") and one regex matching any of
    them, so a single scan decides whether an article needs the slow path at all.
    """
    folds: dict[str, str] = {}
    bmp: list[int] = []
    for cp in range(0x80, 0x10000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        char = chr(cp)
        full = "" if _DROP_ONE.match(char) else _fold_char(char)
        cheap = char.lower().translate(_SIMPLE_TABLE)
        if full != cheap or len(cheap) != 1:
            folds[char] = full
            bmp.append(cp)
        elif char in _SIMPLE_MAP and char not in _COMMON:
            folds[char] = cheap  # exactly what the replace loop would have made of it
            bmp.append(cp)
    for cp in range(_MATH_FIRST, _MATH_LAST + 1):
        folds[chr(cp)] = _fold_char(chr(cp))
    # BMP code points compile to a fast bitmap; one whole astral range keeps it fast (scattered
    # astral code points make `re` test every range for every character, ten times slower).
    pattern = _char_class(bmp)[:-1] + f"{chr(_MATH_FIRST)}-{chr(_MATH_LAST)}]"
    return folds, re.compile(pattern)


def _char_class(codepoints: list[int]) -> str:
    """A compact regex character class (ranges, not a list) for sorted code points."""
    parts: list[str] = []
    start = prev = codepoints[0]
    for cp in codepoints[1:] + [-1]:
        if cp == prev + 1:
            prev = cp
            continue
        parts.append(re.escape(chr(start)) if start == prev else f"{re.escape(chr(start))}-{re.escape(chr(prev))}")
        start = prev = cp
    return "[" + "".join(parts) + "]"


class OffsetMap:
    """Maps positions in an edited string back to the string it was made from.

    Built from edits `(orig_start, orig_len, new_start, new_len)`, in order, where
    orig[orig_start:orig_start+orig_len] became new[new_start:new_start+new_len]; text
    outside edits is unchanged. Lookups are a bisect, so long texts cost nothing extra.
    """

    __slots__ = ("_new_starts", "_edits")

    def __init__(self, edits: list[tuple[int, int, int, int]]):
        self._edits = edits
        self._new_starts = [e[2] for e in edits]

    def start(self, pos: int) -> int:
        """The original position of the character at `pos`."""
        k = bisect_right(self._new_starts, pos) - 1
        if k < 0:
            return pos
        orig_start, orig_len, new_start, new_len = self._edits[k]
        if pos < new_start + new_len:
            return orig_start
        return orig_start + orig_len + (pos - new_start - new_len)

    def end(self, pos: int) -> int:
        """The original (exclusive) end of a span ending at `pos`."""
        if pos <= 0:
            return 0
        last = pos - 1
        k = bisect_right(self._new_starts, last) - 1
        if k < 0:
            return pos
        orig_start, orig_len, new_start, new_len = self._edits[k]
        if last < new_start + new_len:
            return orig_start + orig_len
        return orig_start + orig_len + (last - new_start - new_len) + 1  # start(last) + 1, one bisect


@dataclass(frozen=True, slots=True)
class Normalized:
    """A normalised text and the way back: `span(s, e)` gives offsets into `original`."""

    original: str
    text: str
    maps: tuple[OffsetMap, ...] = ()  # applied last-to-first to get back to `original`

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Original offsets of normalised text[start:end]; trailing dropped marks are included."""
        for offset_map in reversed(self.maps):
            start, end = offset_map.start(start), offset_map.end(end)
        # A match ending on a letter should carry that letter's diacritics: "زيارةً", not "زيارة".
        original = self.original
        size = len(original)
        while end < size and original[end] in _DROPPED:
            end += 1
        return start, end


def _apply(text: str, pattern: re.Pattern[str], replace) -> tuple[str, OffsetMap | None]:
    """Replace every match of `pattern` by replace(match) and record the edits that changed length."""
    edits: list[tuple[int, int, int, int]] = []
    pieces: list[str] = []
    last = 0
    shift = 0
    for match in pattern.finditer(text):
        start, end = match.span()
        new = replace(match)
        pieces.append(text[last:start])
        pieces.append(new)
        if len(new) != end - start:
            edits.append((start, end - start, start + shift, len(new)))
            shift += len(new) - (end - start)
        last = end
    if not pieces:
        return text, None
    pieces.append(text[last:])
    return "".join(pieces), (OffsetMap(edits) if edits else None)


def _compose_nfc(text: str) -> tuple[str, OffsetMap | None]:
    """NFC per base character and its combining marks, recording length changes."""
    return _apply(text, re.compile(r"[^\u0300-\u036f][\u0300-\u036f]+"),
                  lambda m: unicodedata.normalize("NFC", m.group()))


def normalize(text: str) -> Normalized:
    """Normalise `text` for matching (rules in the module docstring), keeping the way back."""
    maps: list[OffsetMap] = []
    current = text
    if not current.isascii():
        if not unicodedata.is_normalized("NFC", current):
            current, offset_map = _compose_nfc(current)
            if offset_map:
                maps.append(offset_map)
        folds, unusual = _unusual()
        if unusual.search(current):
            current, offset_map = _apply(current, unusual, lambda m: folds[m.group()])
            if offset_map:
                maps.append(offset_map)
        current = current.lower()
        # str.replace per character present beats str.translate tenfold on Arabic text.
        for char, replacement in _SIMPLE_ITEMS:
            if char in current:
                current = current.replace(char, replacement)
    else:
        current = current.lower()
        for char in _ASCII_SPACES:
            if char in current:
                current = current.replace(char, " ")
    if "  " in current:
        current, offset_map = _collapse_spaces(current)
        maps.append(offset_map)
    return Normalized(text, current, tuple(maps))


def _collapse_spaces(text: str) -> tuple[str, OffsetMap]:
    """Runs of spaces to one space, recording the edits as `_apply` would; the runs are found
    with str.find, which skips the text between them in C rather than in a regex loop
    ("S - 400" makes three spaces of one dash, so most articles have a few runs)."""
    edits: list[tuple[int, int, int, int]] = []
    pieces: list[str] = []
    size = len(text)
    last = shift = 0
    run = text.find("  ")
    while run >= 0:
        end = run + 2
        while end < size and text[end] == " ":
            end += 1
        pieces.append(text[last:run])
        edits.append((run, end - run, run + shift, 1))
        shift += 1 - (end - run)
        last = end
        run = text.find("  ", end)
    pieces.append(text[last:])
    return " ".join(pieces), OffsetMap(edits)


def is_code(normalized_term: str) -> bool:
    """True for model codes (1-3 letters and a number, "s 400", "hq 9"), which take letter suffixes."""
    return _CODE_RE.match(normalized_term) is not None and normalized_term[-1].isdigit()


def code_variants(normalized_term: str, limit: int = 64) -> tuple[str, ...]:
    """Every spelling of a normalised model code that should match it (rule 6).

    "s 400" -> "s 400", "s400", "с 400", "с400", "ѕ 400", ...: the letters may be written in
    Latin or as their Cyrillic lookalikes, with or without the separator. Terms that are not
    model codes come back unchanged. Text is not rewritten for this: the automaton gets the
    variants instead, which costs nothing per article.
    """
    match = _CODE_RE.match(normalized_term)
    if not match:
        return (normalized_term,)
    letters, number, rest = match.groups()
    spellings = [""]
    for letter in letters:
        spellings = [s + alt for s in spellings for alt in _CODE_LOOKALIKES.get(letter, (letter,))]
    variants = [f"{s}{sep}{number}{rest}" for s in spellings[:limit] for sep in (" ", "")]
    return tuple(dict.fromkeys([normalized_term] + variants))


def normalize_term(term: str) -> str:
    """The normalised form of a watchlist term (outer spaces trimmed)."""
    return normalize(term).text.strip()
