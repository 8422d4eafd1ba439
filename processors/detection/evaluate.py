"""Precision, recall and F1 of a watchlist against labelled articles, per topic and language.

`score_labelled(pairs, topic_ids)` is pure: it takes (language, expected topic ids, detected
topic ids) per article and returns the counts and ratios `newswatch detect --eval` prints.
`score_entities(rows)` does the same for entities: (language, entity type, expected ids, found ids)
per article and type, where the types are country, system and party (a "supplier>recipient" pair).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

ALL = "all"


@dataclass(frozen=True)
class Score:
    """Counts for one (topic, language) cell, with the derived ratios."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def __add__(self, other: "Score") -> "Score":
        return Score(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)


def score_labelled(results: Iterable[tuple[str | None, frozenset[str], frozenset[str]]],
                   topic_ids: Iterable[str]) -> dict[tuple[str, str], Score]:
    """Scores keyed by (topic, language); language "all" and topic "all" hold the totals."""
    topics = list(topic_ids)
    table: dict[tuple[str, str], Score] = {}
    for lang, expected, detected in results:
        lang = lang or "?"
        for topic in topics:
            cell = Score(int(topic in expected and topic in detected),
                         int(topic not in expected and topic in detected),
                         int(topic in expected and topic not in detected))
            for key in ((topic, lang), (topic, ALL), (ALL, lang), (ALL, ALL)):
                table[key] = table.get(key, Score()) + cell
    return table


def format_report(table: dict[tuple[str, str], Score]) -> str:
    """A fixed-width table: one row per topic and language, totals last."""
    topics = sorted({t for t, _ in table if t != ALL}) + [ALL]
    langs = sorted({lang for _, lang in table if lang != ALL}) + [ALL]
    lines = [f"{'topic':<22} {'lang':<5} {'tp':>4} {'fp':>4} {'fn':>4} {'precision':>9} {'recall':>7} {'f1':>6}"]
    for topic in topics:
        for lang in langs:
            cell = table.get((topic, lang))
            if cell is None:
                continue
            lines.append(f"{topic:<22} {lang:<5} {cell.tp:>4} {cell.fp:>4} {cell.fn:>4} "
                         f"{cell.precision:>9.3f} {cell.recall:>7.3f} {cell.f1:>6.3f}")
    return "\n".join(lines)


ENTITY_TYPES = ("country", "system", "party")


def score_entities(rows: Iterable[tuple[str | None, str, frozenset[str], frozenset[str]]]) -> dict[tuple[str, str], Score]:
    """Scores keyed by (entity type, language), with "all" totals per type; an id found and
    expected is a true positive, found only a false positive, expected only a false negative."""
    table: dict[tuple[str, str], Score] = {}
    for lang, kind, expected, found in rows:
        lang = lang or "?"
        cell = Score(len(expected & found), len(found - expected), len(expected - found))
        for key in ((kind, lang), (kind, ALL)):
            table[key] = table.get(key, Score()) + cell
    return table


def format_entity_report(table: dict[tuple[str, str], Score]) -> str:
    """Entity precision and recall per type and language, as a fixed-width table."""
    kinds = [k for k in ENTITY_TYPES if any(t == k for t, _ in table)]
    langs = sorted({lang for _, lang in table if lang != ALL}) + [ALL]
    lines = [f"{'entity':<22} {'lang':<5} {'tp':>4} {'fp':>4} {'fn':>4} {'precision':>9} {'recall':>7} {'f1':>6}"]
    for kind in kinds:
        for lang in langs:
            cell = table.get((kind, lang))
            if cell is None:
                continue
            lines.append(f"{kind:<22} {lang:<5} {cell.tp:>4} {cell.fp:>4} {cell.fn:>4} "
                         f"{cell.precision:>9.3f} {cell.recall:>7.3f} {cell.f1:>6.3f}")
    return "\n".join(lines)
