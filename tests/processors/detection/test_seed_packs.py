"""The default topic packs on the seed article and on the labelled set (F1 >= 0.9 per topic and language)."""

import json

import pytest

from processors.detection import detect
from processors.detection.evaluate import ALL, score_labelled
from tests.processors.detection.conftest import DATA, REPO, Doc

SEED_ARTICLE = REPO / "seeds" / "articles" / "rt-arabic-egypt-russia-2plus2.txt"


@pytest.fixture(scope="module")
def seed_hits(seed_watchlist):
    text = SEED_ARTICLE.read_text(encoding="utf-8")
    return text, {hit.topic: hit for hit in detect(Doc(text=text, lang="ar"), seed_watchlist)}


@pytest.mark.parametrize("topic, expected_terms", [
    ("ministerial_visit", {"2+2", "وزيرا الخارجية والدفاع", "زيارة"}),
    ("air_defense_system", {"اس-300", "اس-400", "أنظمة دفاع جوي"}),
    ("arms_deal", {"صفقة عسكرية"}),
])
def test_seed_article_raises_every_topic_with_evidence_on_the_right_words(seed_hits, topic, expected_terms):
    text, hits = seed_hits
    hit = hits[topic]
    assert 0 < hit.score <= 1
    found = set()
    for evidence in hit.evidence:
        assert evidence.field == "text"
        assert text[evidence.start:evidence.end] == evidence.term
        found.add(evidence.term)
    assert expected_terms <= found


def _labelled():
    with (DATA / "labelled.jsonl").open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def test_labelled_set_is_big_and_balanced():
    rows = _labelled()
    assert len(rows) >= 150
    for lang in ("ar", "en", "ru"):
        mine = [r for r in rows if r["lang"] == lang]
        assert len(mine) >= 45
        for topic in ("arms_deal", "air_defense_system", "ministerial_visit"):
            assert sum(topic in r["labels"] for r in mine) >= 10
        assert sum(not r["labels"] for r in mine) >= 15  # hard negatives


def test_f1_on_the_labelled_set_is_at_least_0_9_per_topic_and_language(seed_watchlist):
    results = []
    for row in _labelled():
        article = Doc(title=row["title"], text=row["text"], lang=row["lang"])
        results.append((row["lang"], frozenset(row["labels"]),
                        frozenset(h.topic for h in detect(article, seed_watchlist))))
    table = score_labelled(results, [t.id for t in seed_watchlist.topics])
    low = {key: round(cell.f1, 3) for key, cell in table.items() if cell.f1 < 0.9}
    assert low == {}
    assert table[(ALL, ALL)].f1 >= 0.9


@pytest.mark.parametrize("title, text, lang", [
    ("Mercedes S400 review", "The Mercedes-Benz S 400 d is a comfortable limousine.", "en"),
    ("Patriots win", "The New England Patriots won the Super Bowl after a late touchdown.", "en"),
    ("Tor Browser 14", "The Tor Browser now blocks more trackers; the Tor network keeps growing.", "en"),
    ("Civil defence drill", "Civil defence sirens were tested across the city.", "en"),
    ("Health minister visit", "The health minister visited a clinic in Cairo.", "en"),
    ("Transfer news", "The club agreed a deal with the striker, who joins after the transfer window opens.", "en"),
    ("وزير الصحة يزور المستشفى", "زار وزير الصحة المستشفى الجامعي.", "ar"),
    ("مرسيدس اس 400", "سيارة مرسيدس اس 400 الجديدة فاخرة.", "ar"),
    ("Тор-браузер", "Браузер Tor получил обновление безопасности.", "ru"),
    ("Министр здравоохранения посетил Казань", "Министр здравоохранения провел встречу с врачами.", "ru"),
])
def test_hard_negatives_stay_quiet(seed_watchlist, title, text, lang):
    assert detect(Doc(title=title, text=text, lang=lang), seed_watchlist) == ()
