"""The detector's output (topics, scores, rules, evidence offsets and snippets) equals the golden file."""

from __future__ import annotations

from tests.processors.detection.golden import GOLDEN, outputs, read_golden


def test_output_on_every_corpus_article_equals_the_golden_file():
    golden = read_golden()
    actual = list(outputs())
    assert len(actual) == len(golden), f"{GOLDEN.name}: corpus size changed"
    differing = [(g["corpus"], g["article"]) for g, a in zip(golden, actual) if g != a]
    assert not differing, (f"{len(differing)} articles differ from {GOLDEN.name}, first {differing[:5]}; "
                           "regenerate it only if the change is meant (see golden.py)")
    assert sum(bool(g["hits"]) for g in golden) > 1000  # the corpus exercises the rules, not just silence
