"""Precision/recall/F1 arithmetic for --eval."""

import pytest

from processors.detection.evaluate import ALL, Score, format_report, score_labelled


def test_scores_per_topic_and_language_with_totals():
    table = score_labelled([
        ("en", frozenset({"a"}), frozenset({"a"})),  # tp a
        ("en", frozenset(), frozenset({"a"})),  # fp a
        ("ru", frozenset({"a", "b"}), frozenset({"b"})),  # fn a, tp b
        (None, frozenset(), frozenset()),
    ], ["a", "b"])
    assert table[("a", "en")] == Score(tp=1, fp=1, fn=0)
    assert table[("a", "ru")] == Score(tp=0, fp=0, fn=1)
    assert table[("a", ALL)] == Score(tp=1, fp=1, fn=1)
    assert table[(ALL, ALL)] == Score(tp=2, fp=1, fn=1)
    assert table[("a", ALL)].precision == pytest.approx(0.5)
    assert table[("a", ALL)].f1 == pytest.approx(0.5)
    assert ("b", "?") in table  # unknown language gets its own column
    report = format_report(table)
    assert report.splitlines()[0].split() == ["topic", "lang", "tp", "fp", "fn", "precision", "recall", "f1"]
    assert "a                      en" in report


def test_empty_cells_are_perfect_not_a_division_error():
    assert Score().precision == Score().recall == 1.0
    assert Score(fp=1).f1 == 0.0
