"""The matcher: one Aho-Corasick pass per field finds every term, then each topic's rules decide.

Evaluation order, per article:
1. Each field (title, summary, text) is normalised once (normalize.py) and scanned once by one
   automaton holding every spelling of every term of every topic; RE2 regexes, if any, run after.
2. A candidate is kept only at word boundaries: no letter or digit right before it (except an
   Arabic proclitic chain such as و ف ب ل ك ال وبال before an Arabic term) and none right after
   it (except the rest of the word for a `*` wildcard term, and letters after a model code:
   S-400s, S-300PMU, HQ-9B). Language-specific spellings count
   only for articles in that language or of unknown language.
3. Per topic, exclusions go first: an exclusion with `within: N` discards the topic's hits within
   N words of an exclusion hit in the same field (with `following: true`, only the N words after
   it), one with `same_sentence: true` those in the exclusion hit's sentence; one without either
   vetoes the topic outright. With `drop: [terms]` only those terms' hits are discarded (in the
   whole article when there is no window), and the topic is never vetoed outright.
4. Rules are tried in order. A rule fires when every `all_of` and `anywhere` term, at least one
   `any_of` term and no `none_of` term is found in its `fields`; with `near: N` one hit of each
   `all_of` term and of the `any_of` group (not the `anywhere` terms) must fit in
   a window of N words of one field, with `same_sentence` in one sentence.
5. The topic's score is 1 - prod(1 - score) over the rules that fired (independent evidence adds
   up, never past 1); its `rule` is the best-scoring rule, and its evidence that of all fired rules.
6. Entities come from the same scan: the gazetteer's spellings are terms of the same automaton.
   When a topic fired (or `all_entities` is asked for), each country, system or person with a hit
   is an entity, except hits inside one of its exclusion phrases ("Turkish delight", "Indian
   Ocean"), weak names ("Georgia", "Jordan") with no strong form of the same country in the
   article, and case-sensitive names ("the US") written otherwise ("the us").
7. Arms-deal parties: when a party topic fired, each supply or acquire cue ("sells", "buys from")
   takes the nearest country before it in its sentence as its subject (or, Arabic verb first, the
   first one after it) and the next other country after it as the counterpart (a few words away,
   or further after a direction word: "from Russia"); a country after a locative ("in Moscow",
   "بموسكو") is never a party. The match gets parties only when every cue in
   the article that found both agrees on one supplier and one recipient.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from itertools import accumulate, chain
from operator import add
from typing import Any, Iterable

from newswatch.schemas import TopicHit, replace_lone_surrogates
from processors.detection.gazetteer import ACQUIRE, CASED, STRONG, WEAK, EntityIndex
from processors.detection.normalize import Normalized, normalize
from processors.detection.watchlist import FIELDS, CompiledTopic, Rule, Watchlist

MAX_EVIDENCE = 8
SNIPPET_CONTEXT = 60  # characters of original text each side of the evidence

_PROCLITICS = frozenset(
    conj + prep + art
    for conj in ("", "و", "ف")
    for prep in ("", "ب", "ك", "ل")
    for art in ("", "ال")
    if not (prep == "ل" and art == "ال")
) | frozenset(conj + "لل" for conj in ("", "و", "ف"))  # ل + ال is written لل
_PROCLITICS = _PROCLITICS - {""}
_MAX_PROCLITIC = max(len(p) for p in _PROCLITICS)
# A sentence ends after a run of these followed by whitespace, and at every line break
# (`sentence_ends` finds them without this regex, which scanned a 3 KB article in ~15 µs).
_SENTENCE_END = re.compile(r"[.!?؟؛…]+(?=\s)")
_SENTENCE_MARKS = tuple(".!?؟؛…")
# After normalisation the only whitespace left is " " and "\n", except these separators, which
# no rule folds and `\s` still matches; a text with one of them takes the regex.
_RARE_SPACES = ("\x1c", "\x1d", "\x1e", "\x1f")
_EVIDENCE_CAP = 4 * MAX_EVIDENCE  # hits a rule collects before it stops looking for more
_OVERLAP_WORDS = 12  # an exclusion phrase can overlap a hit that starts this many words away


# One term found in one field, in normalised coordinates: (term id, field name, start, end, index
# of the word it starts in). A plain tuple, read by index: an article makes dozens, and a
# NamedTuple costs twice as much to build.
Hit = tuple[int, str, int, int, int]

_match_end = re.Match.end


class FieldText:
    """A normalised field, with sentence positions computed only when a rule asks."""

    __slots__ = ("name", "norm", "_sentences", "lazy", "cues", "bounded")

    def __init__(self, name: str, norm: Normalized):
        self.name = name
        self.norm = norm
        self._sentences: list[int] | None = None
        self.lazy: list[tuple[int, int, int]] = []  # gazetteer candidates, checked when entities are wanted
        self.cues: list[tuple[int, int, int]] = []  # deal-cue candidates, checked when parties are wanted
        # The text between two spaces (see `_candidates`), made once for the scan and the lazy checks.
        self.bounded = f" {norm.text} "

    def sentence(self, pos: int) -> int:
        """Index of the sentence `pos` is in (0 for the first)."""
        return bisect_right(self.sentence_ends(), pos)

    def sentence_ends(self) -> list[int]:
        """Sorted positions where a sentence ends (computed on first use)."""
        if self._sentences is None:
            self._sentences = _sentence_ends(self.norm.text)
        return self._sentences


def _sentence_ends(text: str) -> list[int]:
    """Where sentences end in normalised text: after a run of . ! ? ؟ ؛ … followed by whitespace
    (at the whitespace) and after every line break. The end of a run is a mark followed by " "
    or "\n", so each such pair is found with str.split in C, no Python work per sentence."""
    for rare in _RARE_SPACES:
        if rare in text:
            return sorted(chain(map(_match_end, _SENTENCE_END.finditer(text)), _after_each(text, "\n")))
    found = []
    for mark in _SENTENCE_MARKS:
        if mark in text:
            for pair in (mark + " ", mark + "\n"):
                if pair in text:
                    found.append(_after_each(text, pair))
    if "\n" in text:
        found.append(_after_each(text, "\n"))
    return sorted(chain.from_iterable(found))


def _after_each(text: str, separator: str):
    """Position after the first character of each occurrence of `separator` (1 or 2 characters,
    never overlapping itself): from the lengths of the pieces between them."""
    pieces = text.split(separator)
    step = len(separator)
    return map(add, accumulate(map(len, pieces[:-1])), range(1, step * (len(pieces) - 1) + 1, step))


def _article_lang(article: Any) -> str | None:
    lang = getattr(article, "lang", None)
    if not lang:
        return None
    return str(lang).replace("_", "-").split("-")[0].lower() or None


def _scan(field: FieldText, watchlist: Watchlist, lang: str | None, by_term: dict[int, list[Hit]]) -> None:
    """Every term occurrence in one field that passes the boundary and language checks,
    appended to `by_term` (term id -> hits, each list in text order)."""
    text = field.norm.text
    matcher = watchlist.automaton
    found = _candidates(field, matcher.find(text), matcher.values, watchlist, lang, field.lazy, field.cues) \
        if matcher is not None else {}
    if watchlist.regexes:
        try:
            text.encode()
            regex_text = text
        except UnicodeEncodeError:  # a lone UTF-16 surrogate: RE2 reads UTF-8 (one character for one)
            regex_text = replace_lone_surrogates(text)
    for regex in watchlist.regexes:
        for match in regex.pattern.finditer(regex_text):
            start, end = match.span()
            if start == end:
                continue
            if (start > 0 and text[start - 1].isalnum() and text[start].isalnum()) or \
                    (end < len(text) and text[end].isalnum() and text[end - 1].isalnum()):
                continue
            key = start * (len(watchlist.term_names) + 1) + regex.term
            if found.get(key, -1) < end:
                found[key] = end
    if found:
        _add_hits(field, found, len(watchlist.term_names) + 1, by_term)


def _scan_lazy(fields: dict[str, FieldText], watchlist: Watchlist, lang: str | None,
               by_term: dict[int, list[Hit]], cues: bool = False) -> None:
    """The gazetteer candidates the scan set aside (its deal cues with `cues`), checked like the
    others (same automaton pass: only their boundary and language checks were put off)."""
    matcher = watchlist.automaton
    stride = len(watchlist.term_names) + 1
    for field in fields.values():
        matches = field.cues if cues else field.lazy
        if not matches:
            continue
        found = _candidates(field, matches, matcher.lazy_values, watchlist, lang, None)
        # Entities need no text order within a term nor word indexes (-1; the parties count
        # words where they need them), so the hits go straight in.
        name = field.name
        for key, end in found.items():
            start, term = divmod(key, stride)
            hit = (term, name, start, end, -1)
            term_hits = by_term.get(term)
            if term_hits is None:
                by_term[term] = [hit]
            else:
                term_hits.append(hit)


def _candidates(field: FieldText, matches, values, watchlist: Watchlist, lang: str | None,
                lazy: list | None, cues: list | None = None) -> dict[int, int]:
    """(start * stride + term) -> end of the longest spelling there, for the automaton's matches
    that pass the boundary and language checks; a match of a lazy key goes to `lazy` (entities)
    or `cues` (deal cues), to be checked later."""
    text = field.norm.text
    size = len(text)
    # (start, term) -> end of the longest spelling there, the pair packed in one int
    # (start * stride + term): no tuple per candidate, and sorting the keys gives text order.
    stride = len(watchlist.term_names) + 1
    found: dict[int, int] = {}
    seen = found.get
    # The text between two spaces: bounded[i + 1] is text[i], and the character before the
    # start or after the end is a space, so no bounds check per candidate.
    bounded = field.bounded
    for match in matches:
        key, start, end = match
        value = values[key]
        if not value:  # None: an entity spelling's key; False: a deal cue's
            (lazy if value is None else cues).append(match)
            continue
        check_left, check_right, glued_left, glued_right, entries, tails, also_lazy = value
        if also_lazy:
            (lazy if also_lazy == 1 else cues).append(match)
        left_word = check_left and bounded[start].isalnum()
        right_word = check_right and bounded[end + 1].isalnum()
        if (left_word and not glued_left) or (right_word and not glued_right):
            continue  # inside a longer word ("tor" in "torpedo", "тор" in "торговля")
        word_end = end
        if right_word:
            word_end += 1
            while bounded[word_end + 1].isalnum():
                word_end += 1
        for term, term_lang, wildcard, proclitics, letter_suffix in entries:
            if term_lang is not None and lang is not None and term_lang != lang:
                continue
            if left_word and not (proclitics and _proclitic_before(text, start)):
                continue
            if right_word and not (wildcard or (letter_suffix and text[end].isalpha())):
                continue
            key = start * stride + term
            # Keep the longest spelling found at a position ("air defence system" over "air defence").
            if seen(key, -1) < word_end:
                found[key] = word_end
        for wildcard, trie in tails:
            if right_word and not wildcard:
                continue
            for terminals, hit_end in _walk_tail(text, word_end, trie, size, []):
                for term, term_lang, proclitics in terminals:
                    if term_lang is not None and lang is not None and term_lang != lang:
                        continue
                    if left_word and not (proclitics and _proclitic_before(text, start)):
                        continue
                    key = start * stride + term
                    if seen(key, -1) < hit_end:
                        found[key] = hit_end
    return found


def _add_hits(field: FieldText, found: dict[int, int], stride: int, by_term: dict[int, list[Hit]]) -> None:
    """Append the hits in `found` to `by_term` in text order, with their word index."""
    text = field.norm.text
    # One pass in text order: drop a hit inside a longer hit of the same term ("دفاع جوي" inside
    # "أنظمة دفاع جوي"), count the separators (spaces, line breaks read as spaces) since the
    # previous hit for the word index, and append the hit to its term's list.
    count = (text.replace("\n", " ") if "\n" in text else text).count
    longest: dict[int, int] = {}  # term -> end of its last kept hit
    name = field.name
    last_end = longest.get
    hit_list = by_term.get
    words_before = previous = 0
    for key, end in sorted(found.items()):
        start, term = divmod(key, stride)
        if last_end(term, -1) >= end:
            continue
        longest[term] = end
        if start != previous:
            words_before += count(" ", previous, start)
            previous = start
        hit = (term, name, start, end, words_before)
        term_hits = hit_list(term)
        if term_hits is None:
            by_term[term] = [hit]
        else:
            term_hits.append(hit)


def _walk_tail(text: str, pos: int, node: tuple, size: int, out: list) -> list:
    """Match the words after a key against its tail trie ("обороны" in "министр* обороны").

    Appends (terminals, end) for every spelling whose following words are all there, each
    preceded by one space; a wildcard word takes the rest of its word. Returns `out`.
    """
    terminals, children = node
    if terminals:
        out.append((terminals, pos))
    if pos >= size or text[pos] != " ":
        return out
    for stem, wildcard, child in children:
        if not text.startswith(stem, pos + 1):
            continue
        after = pos + 1 + len(stem)
        if wildcard:
            while after < size and text[after].isalnum():
                after += 1
        elif after < size and text[after].isalnum():
            continue
        _walk_tail(text, after, child, size, out)
    return out


def _proclitic_before(text: str, start: int) -> bool:
    """True when the letters glued before `start` are exactly an Arabic proclitic chain."""
    word_start = start
    while word_start > 0 and text[word_start - 1].isalnum():
        word_start -= 1
        if start - word_start > _MAX_PROCLITIC:
            return False
    return text[word_start:start] in _PROCLITICS


def _find_hits(article: Any, watchlist: Watchlist) -> tuple[dict[str, FieldText], dict[int, list[Hit]]]:
    """Normalise and scan every field; hits grouped by term id, in text order."""
    lang = _article_lang(article)
    fields: dict[str, FieldText] = {}
    by_term: dict[int, list[Hit]] = {}
    text = getattr(article, "text", None) or ""
    for name in FIELDS:
        raw = getattr(article, name, None)
        if not raw or not isinstance(raw, str):
            continue
        if name == "summary" and raw.strip() in text:
            continue  # feeds often repeat the summary as the text's first paragraph
        field = FieldText(name, normalize(raw))
        fields[name] = field
        _scan(field, watchlist, lang, by_term)
    # Each term's hits are already in (field, start) order: fields are scanned in FIELDS order
    # and _scan appends each term's hits by start.
    return fields, by_term


class Detection(tuple):
    """What detect() found: the TopicHits (it is their tuple, as before entities existed), and
    `entities` (dicts in the Match's Entity form) and `parties` (a dict or None) from the same scan."""

    entities: tuple[dict[str, Any], ...] = ()
    parties: dict[str, Any] | None = None


def _detection(hits: Iterable[TopicHit], entities: tuple = (), parties: dict | None = None) -> Detection:
    out = Detection(hits)
    if entities:
        out.entities = entities
    if parties:
        out.parties = parties
    return out


def detect(article: Any, watchlist: Watchlist, *, all_entities: bool = False) -> Detection:
    """Topics raised by `article` (anything with .title, .text, .lang, optional .summary,
    .published_at, .fetched_at).

    Pure: no I/O, no clock. Returns TopicHits sorted by topic id, each with its score, the rule
    that fired and evidence whose offsets index the original field text; when a topic fired (or
    always, with `all_entities`) also the gazetteer's entities and the arms-deal parties, offices
    taken at the article's date (published, else fetched).
    """
    fields, by_term = _find_hits(article, watchlist)
    results = []
    if by_term:
        for topic in watchlist.compiled:
            if topic.positive.isdisjoint(by_term):
                continue
            hit = _evaluate_topic(topic, fields, by_term)
            if hit is not None:
                results.append(hit)
    index = watchlist.entities
    if index is None or not (results or all_entities):
        return _detection(results)
    # Every gazetteer spelling is lazy: its hits come from this pass alone.
    gazetteer_hits: dict[int, list[Hit]] = {}
    _scan_lazy(fields, watchlist, _article_lang(article), gazetteer_hits)
    entities, kept = _entities(fields, gazetteer_hits, index, _article_day(article))
    parties = None
    if kept and index.cues and any(r.topic in index.party_topics for r in results):
        infos = index.entities
        sides = [e for e in kept if infos[e].type == "country"]
        if len(sides) >= 2:  # a deal needs two countries
            countries = _countries_by_field((e, h) for e in sides for h in kept[e])
            if _cue_between_countries(fields, countries):
                _scan_lazy(fields, watchlist, _article_lang(article), gazetteer_hits, cues=True)
                parties = _parties(fields, countries, gazetteer_hits, index)
    return _detection(results, entities, parties)


# --- entities ----------------------------------------------------------------------------------

MAX_ENTITY_EVIDENCE = 2
_TYPE_ORDER = {"country": 0, "system": 1, "person": 2}


def _article_day(article: Any):
    for name in ("published_at", "fetched_at"):
        value = getattr(article, name, None)
        if value is not None and hasattr(value, "date"):
            return value.date()
    return None


def _entity_evidence(hit: Hit, field: FieldText) -> dict[str, Any]:
    norm = field.norm
    # Without offset maps nothing changed length (not even a dropped diacritic): offsets are the same.
    start, end = norm.span(hit[2], hit[3]) if norm.maps else (hit[2], hit[3])
    return {"term": norm.original[start:end], "field": field.name, "start": start, "end": end}


def _entities(fields: dict[str, FieldText], by_term: dict[int, list[Hit]], index: EntityIndex,
              day) -> tuple[tuple[dict[str, Any], ...], dict[int, list[Hit]]]:
    """The entities of an article (in Entity form: countries, systems, persons, each by id) and
    every kept hit per entity (for the parties)."""
    roles = index.roles
    strong: dict[int, list[Hit]] = {}
    weak: dict[int, list[Hit]] = {}
    excluded: dict[int, list[Hit]] = {}
    merged: set[int] = set()  # entities whose hits come from more than one term: to sort
    for term, hits in by_term.items():
        meaning = roles.get(term)
        if meaning is None:
            continue
        entity, role = meaning
        if role == STRONG:
            into = strong
        elif role == CASED:  # "the US" but not "the us": its capitals must be written so
            allowed = index.cased[term]
            hits = [h for h in hits if any(word in _original(h, fields[h[1]]) for word in allowed)]
            into = strong
        else:
            into = weak if role == WEAK else excluded
        listed = into.get(entity)
        if listed is None:
            into[entity] = hits  # this call's own lists (the lazy pass made them): no copy
        else:
            listed.extend(hits)
            merged.add(entity)
    if not strong:
        return (), {}
    for entity, vetoes in excluded.items():
        if entity in strong:
            strong[entity] = [h for h in strong[entity] if not _overlaps_any(h, vetoes)]
        if entity in weak:
            weak[entity] = [h for h in weak[entity] if not _overlaps_any(h, vetoes)]
    for entity, hits in weak.items():
        if strong.get(entity):  # a weak name alone ("Georgia" in an Atlanta story) is no country
            strong[entity].extend(hits)
            merged.add(entity)
    infos = index.entities
    rank = index.rank
    out = []
    kept: dict[int, list[Hit]] = {}
    order = _FIELD_ORDER
    for entity in sorted(strong, key=rank.__getitem__):
        hits = strong[entity]
        if not hits:
            continue
        # One term's hits are in text order already (fields in order, matches by position).
        if entity in merged:
            hits.sort(key=lambda h: (order[h[1]], h[2]))
        kept[entity] = hits
        info = infos[entity]
        item: dict[str, Any] = {"type": info.type, "id": info.id, "name": info.name,
                                "evidence": [_entity_evidence(h, fields[h[1]]) for h in hits[:MAX_ENTITY_EVIDENCE]]}
        if info.offices:
            office = info.office_at(day)
            if office is not None:
                item["office"] = office.office
                item["country"] = office.country
        out.append(item)
    return tuple(out), kept


def _original(hit: Hit, field: FieldText) -> str:
    norm = field.norm
    start, end = norm.span(hit[2], hit[3]) if norm.maps else (hit[2], hit[3])
    return norm.original[start:end]


def _overlaps_any(hit: Hit, others: list[Hit]) -> bool:
    _, field, start, end, _ = hit
    return any(o[1] == field and o[2] < end and start < o[3] for o in others)


_PARTY_WORDS = 12  # a party is at most this many words from its cue
_NEAR_WORDS = 6  # ... and a counterpart this many unless a direction word ("from") marks it


# Per field, the country hits in text order as (start, entity, hit), and their starts alone, so
# that each cue bisects to its neighbours and walks out only while they are within _PARTY_WORDS
# words and in its sentence (both only grow with the distance). In one sentence there is no line
# break, so the words between two places are the spaces between them.
CountrySides = dict[str, tuple[list[int], list[tuple[int, int, Hit]]]]


def _countries_by_field(countries: Iterable[tuple[int, Hit]]) -> CountrySides:
    by_field: CountrySides = {}
    for e, h in countries:
        entry = by_field.get(h[1])
        if entry is None:
            entry = by_field[h[1]] = ([], [])
        entry[1].append((h[2], e, h))
    for starts, placed in by_field.values():
        placed.sort(key=lambda side: side[0])
        starts.extend(side[0] for side in placed)
    return by_field


def _parties(fields: dict[str, FieldText], by_field: CountrySides, by_term: dict[int, list[Hit]],
             index: EntityIndex) -> dict[str, Any] | None:
    """{supplier, recipient, evidence} when the article's supply/acquire cues agree on one pair."""
    kinds = index.cues
    cues: list[tuple[int, Hit]] = []
    for term, hits in by_term.items():  # the article's few hit terms, not every cue spelling
        kind = kinds.get(term)
        if kind is not None:
            cues.extend((kind, hit) for hit in hits)
    if not cues:
        return None
    # The longest cue at a place wins ("delivered by" over "delivered").
    order = _FIELD_ORDER
    cues.sort(key=lambda c: (order[c[1][1]], c[1][2], -c[1][3]))
    outer_cues = []
    last = (None, -1)
    for kind, hit in cues:
        if hit[1] == last[0] and hit[3] <= last[1]:
            continue
        outer_cues.append((kind, hit))
        last = (hit[1], hit[3])
    infos = index.entities
    place: dict[Hit, bool] = {}
    proposals: dict[tuple[str, str], list[Hit]] = {}
    for kind, cue in outer_cues:
        entry = by_field.get(cue[1])
        if entry is None:
            continue
        field = fields[cue[1]]
        text = field.norm.text
        count = text.count
        starts, placed = entry
        cue_start, cue_end = cue[2], cue[3]
        actor = None  # (entity, hit, words from the cue): the nearest country before the cue ...
        for i in range(bisect_left(starts, cue_start) - 1, -1, -1):
            start, e, h = placed[i]
            words = count(" ", start, cue_start)
            if words > _PARTY_WORDS or not _one_sentence(text, start, cue_start):
                break
            if h[3] > cue_start or _placed(h, field, index.locatives, place):
                continue  # overlapping the cue, or a place ("in Moscow")
            actor = (e, h, words)
            break
        after = []  # ... the countries after it, in text order
        for i in range(bisect_left(starts, cue_end), len(placed)):
            start, e, h = placed[i]
            words = count(" ", cue_start, start)
            if words > _PARTY_WORDS or not _one_sentence(text, cue_start, start):
                break
            if not _placed(h, field, index.locatives, place):
                after.append((e, h, words))
        if actor is None:
            if not after:
                continue
            actor, after = after[0], after[1:]  # an Arabic verb first: its subject comes after it
        counterpart = next(((e, h, words) for e, h, words in after if e != actor[0] and (
            words <= _NEAR_WORDS or _is_marked(h, field, index.directions))), None)
        if counterpart is None:
            continue
        subject, other = infos[actor[0]].id, infos[counterpart[0]].id
        pair = (other, subject) if kind == ACQUIRE else (subject, other)
        proposals.setdefault(pair, []).extend((actor[1], cue, counterpart[1]))
    if len(proposals) != 1:
        return None  # none, or cues that disagree: no party is better than a wrong one
    (supplier, recipient), hits = next(iter(proposals.items()))
    evidence = sorted(dict.fromkeys(hits), key=lambda h: (order[h[1]], h[2]))
    return {"supplier": supplier, "recipient": recipient,
            "evidence": [_entity_evidence(h, fields[h[1]]) for h in evidence[:MAX_EVIDENCE]]}


def _placed(hit: Hit, field: FieldText, locatives: frozenset[str], known: dict[Hit, bool]) -> bool:
    """`_is_place`, asked once per hit and article."""
    answer = known.get(hit)
    if answer is None:
        answer = known[hit] = _is_place(hit, field, locatives)
    return answer


def _cue_between_countries(fields: dict[str, FieldText], by_field: CountrySides) -> bool:
    """False when no deal-cue candidate (an unchecked automaton match, so a superset of the cues)
    has, within _PARTY_WORDS words of it and in its sentence, a country hit after it and two
    different countries in all: then `_parties` could find no pair, and the cues need not be
    checked. It looks only at the country hits next to each cue (bisected by start; the words and
    the sentence test are `_parties`' own, on the few characters between), never at a whole text."""
    for name, (starts, sides) in by_field.items():
        if len(sides) < 2 or not fields[name].cues:
            continue
        text = fields[name].norm.text
        count = text.count
        for _, cue_start, _ in fields[name].cues:
            split = bisect_right(starts, cue_start)
            after = set()
            for start, entity, _ in sides[split:]:
                if count(" ", cue_start, start) > _PARTY_WORDS or not _one_sentence(text, cue_start, start):
                    break  # every later hit is further away, or past the same sentence end
                after.add(entity)
            if not after:
                continue
            if len(after) >= 2:
                return True
            for start, entity, _ in reversed(sides[:split]):
                if count(" ", start, cue_start) > _PARTY_WORDS or not _one_sentence(text, start, cue_start):
                    break
                if entity not in after:
                    return True
    return False


def _one_sentence(text: str, start: int, end: int) -> bool:
    """True when no sentence ends in text[start:end] (the rules of `_sentence_ends`)."""
    return "\n" not in text[start:end] and _SENTENCE_END.search(text, start, end) is None


def _is_marked(hit: Hit, field: FieldText, directions: frozenset[str]) -> bool:
    """True when a direction word ("from", "у", "من") comes right before a country hit, or the
    Arabic preposition ل is glued to it ("للسعودية", "لمصر")."""
    text = field.norm.text
    start = hit[2]
    if text.startswith("لل", start) or (start >= 1 and text[start - 1] == "ل"
                                         and (start == 1 or not text[start - 2].isalnum())):
        return True
    if start < 2 or text[start - 1] != " ":
        return False
    word_start = text.rfind(" ", 0, start - 1) + 1
    if text[word_start:start - 1] == "the" and word_start >= 2:  # "from the United States"
        start, word_start = word_start, text.rfind(" ", 0, word_start - 1) + 1
    return text[word_start:start - 1] in directions


def _is_place(hit: Hit, field: FieldText, locatives: frozenset[str]) -> bool:
    """True when a country hit is a place: after a locative word ("in", "в", "في"), or with the
    Arabic preposition ب glued to it ("بموسكو")."""
    text = field.norm.text
    start = hit[2]
    if start >= 1 and text[start - 1] == "ب" and (start == 1 or not text[start - 2].isalnum()):
        return True
    if start < 2 or text[start - 1] != " ":
        return False
    word_start = text.rfind(" ", 0, start - 1) + 1
    return text[word_start:start - 1] in locatives


def _evaluate_topic(topic: CompiledTopic, fields: dict[str, FieldText],
                    by_term: dict[int, list[Hit]]) -> TopicHit | None:
    # The article's few found terms, not the topic's hundreds of spellings, drive this loop.
    terms = topic.terms
    hits = {t: hs for t, hs in by_term.items() if t in terms}
    # Exclusions only take hits away, so a topic none of whose rules has its terms even before
    # them cannot fire ("Tor" with no weapon word): skip the exclusion work, the costly part.
    for rule in topic.rules:
        if _could_fire(rule, hits):
            break
    else:
        return None
    for exclusion in topic.exclusions:
        vetoes = [h for t in exclusion.terms for h in hits.get(t, ())]
        if not vetoes:
            continue
        if exclusion.same_sentence:
            hits = _drop_in_sentences(hits, vetoes, fields, exclusion.terms, exclusion.drop)
            continue
        if exclusion.within is None:
            if not exclusion.drop:
                return None
            hits = {t: ([] if t in exclusion.drop else hs) for t, hs in hits.items()}
            continue
        near_veto = _VetoIndex(vetoes, exclusion.within, following=exclusion.following)
        hits = near_veto.keep_all(hits, spared=exclusion.terms, only=exclusion.drop)
    fired: list[tuple[Rule, list[Hit]]] = []
    for rule in topic.rules:
        evidence = _evaluate_rule(rule, hits, fields)
        if evidence:
            fired.append((rule, evidence))
    if not fired:
        return None
    miss = 1.0
    for rule, _ in fired:
        miss *= 1.0 - rule.score
    best = max(fired, key=lambda f: f[0].score)[0]
    evidence_hits = _outermost({h for _, ev in fired for h in ev})
    return TopicHit(
        topic=topic.topic.id, title=topic.topic.title, severity=topic.topic.severity,
        score=round(1.0 - miss, 4), rule=best.id,
        # Plain dicts: TopicHit validates them into Evidence in one call, half the cost of
        # building each Evidence model first.
        evidence=[_evidence(h, fields[h[1]]) for h in evidence_hits[:MAX_EVIDENCE]],
    )


def _outermost(hits: Iterable[Hit]) -> list[Hit]:
    """Hits in text order, without those inside another ("Patriot" inside "Patriot batteries")."""
    kept: list[Hit] = []
    order = _FIELD_ORDER
    # Plain tuples sort without a key call per hit. Equal (field, start, end) prefixes can only
    # come from two terms on one span: the hit tuple then breaks the tie, and either gives the same
    # Evidence (term text, field and offsets are the span's).
    decorated = sorted([(order[h[1]], h[2], -h[3], h) for h in hits])
    last_field = None
    last_end = -1
    for _, _, _, hit in decorated:
        field, end = hit[1], hit[3]
        if field == last_field and end <= last_end:
            continue
        kept.append(hit)
        last_field, last_end = field, end
    return kept


class _VetoIndex:
    """Answers "is this hit within N words of (or overlapping) an exclusion hit?".

    Per field, the word positions the exclusion covers are one set, so most hits cost one
    lookup; the character overlap ("civil defence" over "defence") is checked against the few
    vetoes that start near enough to overlap.
    """

    __slots__ = ("by_field", "overlap")

    def __init__(self, vetoes: list[Hit], within: int, following: bool = False):
        spans_by_field: dict[str, list[tuple[int, int, int]]] = {}
        for _, field, start, end, word in vetoes:
            spans = spans_by_field.get(field)
            if spans is None:
                spans_by_field[field] = [(word, start, end)]
            else:
                spans.append((word, start, end))
        # field -> (covered word positions, veto word positions sorted, (word, start, end) alike,
        # whether to loop over all the spans rather than bisect)
        by_field: dict[str, tuple[set[int], list[int], list[tuple[int, int, int]], bool]] = {}
        self.by_field = by_field
        behind = 0 if following else within
        for field, spans in spans_by_field.items():
            spans.sort()
            words = [word for word, _, _ in spans]
            covered: set[int] = set()
            # Each word once, however wide the windows (`within` may be 1,000) and many the vetoes.
            done = -1 << 62
            for word in words:
                first = word - behind
                if first <= done:
                    first = done + 1
                done = word + within
                covered.update(range(first, done + 1))
            # News articles have one to four vetoes per field: a plain loop beats a bisect.
            by_field[field] = (covered, words, spans, len(spans) <= 4)
        # A veto can only overlap a hit starting within _OVERLAP_WORDS words of it; when the
        # window already covers those words both ways, every such hit is dropped as covered.
        self.overlap = following or within < _OVERLAP_WORDS

    def keep_all(self, hits: dict[int, list[Hit]], spared: tuple[int, ...],
                 only: frozenset[int] = frozenset()) -> dict[int, list[Hit]]:
        """Each term's hits that are neither within the window of nor overlapping an exclusion
        hit; the `spared` terms (the exclusion's own) keep all theirs, and so does every term
        outside `only` when it is given. One call per exclusion, not one per term: a topic has
        many terms with a hit or two each."""
        field_entry = self.by_field.get
        overlap = self.overlap
        out: dict[int, list[Hit]] = {}
        for term, term_hits in hits.items():
            if term in spared or (only and term not in only):
                out[term] = term_hits
                continue
            kept = out[term] = []
            for hit in term_hits:
                _, field, start, end, position = hit  # one unpack, not four index lookups
                entry = field_entry(field)
                if entry is None:
                    kept.append(hit)
                    continue
                covered, words, spans, few = entry
                if position in covered:
                    continue
                if not overlap:
                    kept.append(hit)
                    continue
                # Only vetoes a few words away can overlap: bisect, so long articles stay linear.
                near = spans if few else spans[bisect_left(words, position - _OVERLAP_WORDS):
                                               bisect_right(words, position + _OVERLAP_WORDS)]
                for word, veto_start, veto_end in near:
                    if veto_start < end and start < veto_end and -_OVERLAP_WORDS <= position - word <= _OVERLAP_WORDS:
                        break
                else:
                    kept.append(hit)
        return out


def _drop_in_sentences(hits: dict[int, list[Hit]], vetoes: list[Hit], fields: dict[str, FieldText],
                       spared: tuple[int, ...], only: frozenset[int]) -> dict[int, list[Hit]]:
    """The hits outside every sentence that holds an exclusion hit (`same_sentence: true`);
    the exclusion's own terms, and the terms outside `only` when it is given, keep theirs."""
    marked = {(h[1], fields[h[1]].sentence(h[2])) for h in vetoes}
    out: dict[int, list[Hit]] = {}
    for term, term_hits in hits.items():
        if term in spared or (only and term not in only):
            out[term] = term_hits
        else:
            out[term] = [h for h in term_hits if (h[1], fields[h[1]].sentence(h[2])) not in marked]
    return out


_ALL_FIELDS = frozenset(FIELDS)
_FIELD_ORDER = {name: i for i, name in enumerate(FIELDS)}


def _could_fire(rule: Rule, hits: dict[int, list[Hit]]) -> bool:
    """False when `rule` lacks an `all_of` or `any_of` term in its fields whatever the exclusions do.

    `hits` are the hits as found, before exclusions: every list in it has at least one hit.
    """
    scope = rule.fields
    if scope == _ALL_FIELDS:  # most rules: a term with a hit (lists are never empty) is enough
        for term in rule.all_of + rule.anywhere:
            if term not in hits:
                return False
        return not rule.any_of or any(term in hits for term in rule.any_of)
    for term in rule.all_of + rule.anywhere:
        if not any(h[1] in scope for h in hits.get(term, ())):
            return False
    return not rule.any_of or any(h[1] in scope for term in rule.any_of for h in hits.get(term, ()))


def _in_fields(hits: Iterable[Hit], fields: frozenset[str]) -> list[Hit]:
    return [h for h in hits if h[1] in fields]


def _evaluate_rule(rule: Rule, hits: dict[int, list[Hit]], fields: dict[str, FieldText]) -> list[Hit]:
    """The evidence for `rule`, or [] when it does not fire."""
    scope = rule.fields
    get = hits.get
    slots: list[list[Hit]] = []
    if scope == _ALL_FIELDS:  # most rules: every hit counts, no filtered copies
        # (Lists may be empty here: exclusions leave a term's list empty, not absent.)
        for term in rule.none_of:
            if get(term):
                return []
        for term in rule.all_of:
            found = get(term)
            if not found:
                return []
            slots.append(found)
        any_of = rule.any_of
        if any_of:
            if len(any_of) == 1:
                found = get(any_of[0])  # no copy: slots are only read
            else:
                found = [h for term in any_of for h in get(term, ())]
            if not found:
                return []
            slots.append(found)
    else:
        for term in rule.none_of:
            if _in_fields(get(term, ()), scope):
                return []
        for term in rule.all_of:
            found = _in_fields(get(term, ()), scope)
            if not found:
                return []
            slots.append(found)
        if rule.any_of:
            found = [h for term in rule.any_of for h in _in_fields(get(term, ()), scope)]
            if not found:
                return []
            slots.append(found)
    elsewhere: list[Hit] = []
    for term in rule.anywhere:  # found anywhere in scope; its first hit joins the evidence
        found = _in_fields(get(term, ()), scope)
        if not found:
            return []
        elsewhere.append(found[0])
    if rule.near is not None:
        evidence = _window(slots, fields, rule.near)
    elif rule.same_sentence:
        evidence = _window(slots, fields, 0, by_sentence=True)
    else:
        return [h for slot in slots for h in slot][:_EVIDENCE_CAP] + elsewhere
    return evidence + elsewhere if evidence else []


def _window(slots: list[list[Hit]], fields: dict[str, FieldText], width: int, by_sentence: bool = False) -> list[Hit]:
    """Hits that sit in a window of `width` positions of one field covering every slot; [] if none.

    Positions are word indexes, or sentence indexes with `by_sentence`. A sliding window over
    the hits sorted by position; every window that covers all slots contributes its hits, so
    the evidence shows each place where the rule holds.
    """
    evidence: dict[Hit, None] = {}
    wanted = len(slots)
    for name, field in fields.items():
        # (position, start, arrival, slot, hit): plain tuple order is the (position, start)
        # order with ties in arrival order, as a stable sort on that key would give.
        tagged = []
        if by_sentence:
            ends = None  # sentence ends are found only for a field that has a hit
            for i, slot in enumerate(slots):
                for h in slot:
                    if h[1] == name:  # the hit's field
                        if ends is None:
                            ends = field.sentence_ends()
                        tagged.append((bisect_right(ends, h[2]), h[2], len(tagged), i, h))
        else:
            for i, slot in enumerate(slots):
                for h in slot:
                    if h[1] == name:
                        tagged.append((h[4], h[2], len(tagged), i, h))
        if len({t[3] for t in tagged}) < wanted:
            continue
        tagged.sort()
        counts = [0] * wanted
        covered = 0
        left = 0
        added = 0  # hits before this index are already evidence
        for right, (pos, _, _, slot, _) in enumerate(tagged):
            if counts[slot] == 0:
                covered += 1
            counts[slot] += 1
            while tagged[left][0] < pos - width:
                gone = tagged[left][3]
                counts[gone] -= 1
                if counts[gone] == 0:
                    covered -= 1
                left += 1
            if covered == wanted:
                for t in tagged[max(left, added):right + 1]:
                    evidence[t[4]] = None
                added = right + 1
                if len(evidence) >= _EVIDENCE_CAP:
                    return list(evidence)
    return list(evidence)


def _evidence(hit: Hit, field: FieldText) -> dict[str, Any]:
    """The Evidence fields for `hit`: the term as written, offsets into the original field text
    and a snippet of whole words around it."""
    original = field.norm.original
    start, end = field.norm.span(hit[2], hit[3])
    lo = max(0, start - SNIPPET_CONTEXT)
    hi = min(len(original), end + SNIPPET_CONTEXT)
    # Widen to whole words so the snippet never starts or ends mid-word.
    while lo > 0 and not original[lo - 1].isspace() and start - lo < SNIPPET_CONTEXT + 20:
        lo -= 1
    while hi < len(original) and not original[hi].isspace() and hi - end < SNIPPET_CONTEXT + 20:
        hi += 1
    snippet = " ".join(original[lo:hi].split())
    return {"term": original[start:end], "field": field.name, "start": start, "end": end, "snippet": snippet}
