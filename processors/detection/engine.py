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
   N words of an exclusion hit in the same field; one without `within` vetoes the topic outright.
4. Rules are tried in order. A rule fires when every `all_of` term, at least one `any_of` term and
   no `none_of` term is found in its `fields`; with `near: N` one hit of each of them must fit in
   a window of N words of one field, with `same_sentence` in one sentence.
5. The topic's score is 1 - prod(1 - score) over the rules that fired (independent evidence adds
   up, never past 1); its `rule` is the best-scoring rule, and its evidence that of all fired rules.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from typing import Any, Iterable

from newswatch.schemas import Evidence, TopicHit
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
_SENTENCE_END = re.compile(r"[.!?؟؛…]+(?=\s)|\n")
_SEPARATOR = re.compile(r"[ \n]")
_SHORT_TEXT = 8192  # characters; longer fields get a word index so lookups stay logarithmic
_EVIDENCE_CAP = 4 * MAX_EVIDENCE  # hits a rule collects before it stops looking for more
_OVERLAP_WORDS = 12  # an exclusion phrase can overlap a hit that starts this many words away


@dataclass(frozen=True, slots=True)
class Hit:
    """One term found in one field, in normalised coordinates."""

    term: int
    field: str
    start: int
    end: int


class FieldText:
    """A normalised field, with word and sentence positions computed only when a rule asks."""

    __slots__ = ("name", "norm", "_sentences", "_separators")

    def __init__(self, name: str, norm: Normalized):
        self.name = name
        self.norm = norm
        self._sentences: list[int] | None = None
        self._separators: list[int] | None = None

    def word(self, pos: int) -> int:
        """The index of the word at `pos` (words are separated by one space or a line break)."""
        text = self.norm.text
        if len(text) <= _SHORT_TEXT:
            # Counting in C beats building an index for the few lookups a news article needs.
            return text.count(" ", 0, pos) + text.count("\n", 0, pos)
        if self._separators is None:
            self._separators = [m.start() for m in _SEPARATOR.finditer(text)]
        return bisect_left(self._separators, pos)

    def sentence(self, pos: int) -> int:
        if self._sentences is None:
            self._sentences = [m.end() for m in _SENTENCE_END.finditer(self.norm.text)]
        return bisect_right(self._sentences, pos)


def _article_lang(article: Any) -> str | None:
    lang = getattr(article, "lang", None)
    if not lang:
        return None
    return str(lang).replace("_", "-").split("-")[0].lower() or None


def _scan(field: FieldText, watchlist: Watchlist, lang: str | None) -> list[Hit]:
    """Every term occurrence in one field that passes the boundary and language checks."""
    text = field.norm.text
    size = len(text)
    found: dict[tuple[int, int], Hit] = {}
    automaton = watchlist.automaton
    if automaton is not None and len(automaton):
        for last, (length, check_left, check_right, entries) in automaton.iter(text):
            start = last - length + 1
            end = last + 1
            left_word = check_left and start > 0 and text[start - 1].isalnum()
            right_word = check_right and end < size and text[end].isalnum()
            for term, term_lang, wildcard, proclitics, tail, letter_suffix in entries:
                if term_lang is not None and lang is not None and term_lang != lang:
                    continue
                if left_word and not (proclitics and _proclitic_before(text, start)):
                    continue
                hit_end = end
                if right_word:
                    if not (wildcard or (letter_suffix and text[end].isalpha())):
                        continue
                    while hit_end < size and text[hit_end].isalnum():
                        hit_end += 1
                if tail:
                    hit_end = _match_tail(text, hit_end, tail)
                    if hit_end < 0:
                        continue
                key = (term, start)
                # Keep the longest spelling found at a position ("air defence system" over "air defence").
                previous = found.get(key)
                if previous is None or previous.end < hit_end:
                    found[key] = Hit(term, field.name, start, hit_end)
    for regex in watchlist.regexes:
        for match in regex.pattern.finditer(text):
            start, end = match.span()
            if start == end:
                continue
            if (start > 0 and text[start - 1].isalnum() and text[start].isalnum()) or \
                    (end < size and text[end].isalnum() and text[end - 1].isalnum()):
                continue
            key = (regex.term, start)
            if key not in found or found[key].end < end:
                found[key] = Hit(regex.term, field.name, start, end)
    return _drop_nested(found.values())


def _drop_nested(hits) -> list[Hit]:
    """Drop a hit inside a longer hit of the same term ("دفاع جوي" inside "أنظمة دفاع جوي")."""
    kept: list[Hit] = []
    for hit in sorted(hits, key=lambda h: (h.term, h.start, -h.end)):
        if kept and kept[-1].term == hit.term and hit.end <= kept[-1].end:
            continue
        kept.append(hit)
    return kept


def _match_tail(text: str, pos: int, tail: tuple[tuple[str, bool], ...]) -> int:
    """Match the words after a phrase's first word ("обороны" in "министр* обороны").

    Returns the end of the phrase, or -1 when the words that follow differ.
    """
    size = len(text)
    for stem, wildcard in tail:
        if pos >= size or text[pos] != " " or not text.startswith(stem, pos + 1):
            return -1
        pos += 1 + len(stem)
        if wildcard:
            while pos < size and text[pos].isalnum():
                pos += 1
        elif pos < size and text[pos].isalnum():
            return -1
    return pos


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
        for hit in _scan(field, watchlist, lang):
            by_term.setdefault(hit.term, []).append(hit)
    for hits in by_term.values():
        hits.sort(key=lambda h: (FIELDS.index(h.field), h.start))
    return fields, by_term


def detect(article: Any, watchlist: Watchlist) -> tuple[TopicHit, ...]:
    """Topics raised by `article` (anything with .title, .text, .lang, optional .summary).

    Pure: no I/O, no clock. Returns TopicHits sorted by topic id, each with its score, the rule
    that fired and evidence whose offsets index the original field text.
    """
    fields, by_term = _find_hits(article, watchlist)
    if not by_term:
        return ()
    results = []
    for topic in watchlist.compiled:
        if topic.positive.isdisjoint(by_term):
            continue
        hit = _evaluate_topic(topic, fields, by_term)
        if hit is not None:
            results.append(hit)
    return tuple(results)


def _evaluate_topic(topic: CompiledTopic, fields: dict[str, FieldText],
                    by_term: dict[int, list[Hit]]) -> TopicHit | None:
    hits = {t: by_term[t] for t in topic.terms if t in by_term}
    for exclusion in topic.exclusions:
        vetoes = [h for t in exclusion.terms for h in hits.get(t, ())]
        if not vetoes:
            continue
        if exclusion.within is None:
            return None
        near_veto = _VetoIndex(vetoes, exclusion.within, fields)
        hits = {t: [h for h in hs if t in exclusion.terms or not near_veto(h)] for t, hs in hits.items()}
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
        evidence=tuple(_evidence(h, fields[h.field]) for h in evidence_hits[:MAX_EVIDENCE]),
    )


def _outermost(hits: Iterable[Hit]) -> list[Hit]:
    """Hits in text order, without those inside another ("Patriot" inside "Patriot batteries")."""
    kept: list[Hit] = []
    for hit in sorted(hits, key=lambda h: (FIELDS.index(h.field), h.start, -h.end)):
        if kept and kept[-1].field == hit.field and hit.end <= kept[-1].end:
            continue
        kept.append(hit)
    return kept


class _VetoIndex:
    """Answers "is this hit within N words of (or overlapping) an exclusion hit?" by bisection."""

    def __init__(self, vetoes: list[Hit], within: int, fields: dict[str, FieldText]):
        self.within = within
        self.fields = fields
        self.by_field: dict[str, tuple[list[int], list[Hit]]] = {}
        for name in {v.field for v in vetoes}:
            field = fields[name]
            ordered = sorted(((field.word(v.start), v) for v in vetoes if v.field == name), key=lambda t: t[0])
            self.by_field[name] = ([w for w, _ in ordered], [v for _, v in ordered])

    def __call__(self, hit: Hit) -> bool:
        entry = self.by_field.get(hit.field)
        if entry is None:
            return False
        words, vetoes = entry
        position = self.fields[hit.field].word(hit.start)
        reach = max(self.within, _OVERLAP_WORDS)
        for index in range(bisect_left(words, position - reach), bisect_right(words, position + reach)):
            veto = vetoes[index]
            if abs(words[index] - position) <= self.within:
                return True
            if veto.start < hit.end and hit.start < veto.end:  # "civil defence" over "defence"
                return True
        return False


def _in_fields(hits: Iterable[Hit], fields: frozenset[str]) -> list[Hit]:
    return [h for h in hits if h.field in fields]


def _evaluate_rule(rule: Rule, hits: dict[int, list[Hit]], fields: dict[str, FieldText]) -> list[Hit]:
    """The evidence for `rule`, or [] when it does not fire."""
    scope = rule.fields
    for term in rule.none_of:
        if _in_fields(hits.get(term, ()), scope):
            return []
    slots: list[list[Hit]] = []
    for term in rule.all_of:
        found = _in_fields(hits.get(term, ()), scope)
        if not found:
            return []
        slots.append(found)
    if rule.any_of:
        found = [h for term in rule.any_of for h in _in_fields(hits.get(term, ()), scope)]
        if not found:
            return []
        slots.append(found)
    if rule.near is not None:
        return _window(slots, fields, lambda f, h: f.word(h.start), rule.near)
    if rule.same_sentence:
        return _window(slots, fields, lambda f, h: f.sentence(h.start), 0)
    return [h for slot in slots for h in slot][:_EVIDENCE_CAP]


def _window(slots: list[list[Hit]], fields: dict[str, FieldText], position, width: int) -> list[Hit]:
    """Hits that sit in a window of `width` positions of one field covering every slot; [] if none.

    A sliding window over the hits sorted by position; every window that covers all slots
    contributes its hits, so the evidence shows each place where the rule holds.
    """
    evidence: dict[Hit, None] = {}
    for name, field in fields.items():
        tagged = sorted(((position(field, h), i, h) for i, slot in enumerate(slots) for h in slot if h.field == name),
                        key=lambda t: (t[0], t[2].start))
        if len({i for _, i, _ in tagged}) < len(slots):
            continue
        counts = [0] * len(slots)
        covered = 0
        left = 0
        added = 0  # hits before this index are already evidence
        for right, (pos, slot, _) in enumerate(tagged):
            if counts[slot] == 0:
                covered += 1
            counts[slot] += 1
            while tagged[left][0] < pos - width:
                gone = tagged[left][1]
                counts[gone] -= 1
                if counts[gone] == 0:
                    covered -= 1
                left += 1
            if covered == len(slots):
                for _, _, h in tagged[max(left, added):right + 1]:
                    evidence[h] = None
                added = right + 1
                if len(evidence) >= _EVIDENCE_CAP:
                    return list(evidence)
    return list(evidence)


def _evidence(hit: Hit, field: FieldText) -> Evidence:
    original = field.norm.original
    start, end = field.norm.span(hit.start, hit.end)
    lo = max(0, start - SNIPPET_CONTEXT)
    hi = min(len(original), end + SNIPPET_CONTEXT)
    # Widen to whole words so the snippet never starts or ends mid-word.
    while lo > 0 and not original[lo - 1].isspace() and start - lo < SNIPPET_CONTEXT + 20:
        lo -= 1
    while hi < len(original) and not original[hi].isspace() and hi - end < SNIPPET_CONTEXT + 20:
        hi += 1
    snippet = " ".join(original[lo:hi].split())
    return Evidence(term=original[start:end], field=field.name, start=start, end=end, snippet=snippet)
