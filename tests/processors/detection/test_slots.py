"""Slots in watchlist terms: `{country.adj}` and the other gazetteer classes, `{term}` for a word
list of the same topic, and file:line errors for what cannot be filled."""

from __future__ import annotations

import shutil
import textwrap

import pytest

from newswatch.errors import ConfigError
from processors.detection import detect, load_watchlists
from processors.detection.watchlist import problems
from tests.processors.detection.conftest import SEED_WATCHLISTS, Doc

PACK = """\
topics:
  - id: visits
    title: Visits
    terms:
      minister:
        ru: ["глав* {country.adj} {ministry}"]
        en: ["{country.name} foreign minister", "{country.adj} foreign minister"]
        ar: ["{minister_word} الخارجية ال{country.adj}"]
      ministry:
        ru: [МИД*, Минобороны]
      minister_word:
        ar: [وزير, وزيرة]
      visit:
        en: [visit*]
        ru: [визит*]
        ar: [زيارة]
    rules:
      - id: visit
        all_of: [minister, visit]
"""


def _folder(tmp_path, pack: str, gazetteer: bool = True):
    folder = tmp_path / "packs"
    folder.mkdir()
    (folder / "pack.yaml").write_text(textwrap.dedent(pack), encoding="utf-8")
    if gazetteer:
        shutil.copytree(SEED_WATCHLISTS / "gazetteer", folder / "gazetteer")
    return folder


@pytest.mark.parametrize("lang, text, term", [
    ("ru", "Глава египетского МИДа начал визит в Москву.", "Глава египетского МИДа"),
    ("ru", "Глава турецкого Минобороны прибыл с визитом.", "Глава турецкого Минобороны"),
    ("en", "Egypt foreign minister begins a visit to Moscow.", "Egypt foreign minister"),
    ("en", "The Egyptian foreign minister begins a visit.", "Egyptian foreign minister"),
    ("ar", "بدأ وزير الخارجية المصري زيارة إلى موسكو.", "وزير الخارجية المصري"),
    ("ar", "بدأت وزيرة الخارجية الألمانية زيارة إلى القاهرة.", "وزيرة الخارجية الألمانية"),
])
def test_slots_stand_for_every_spelling_of_their_class(tmp_path, lang, text, term):
    watchlist = load_watchlists(_folder(tmp_path, PACK))
    hits = detect(Doc(text=text, lang=lang), watchlist)
    assert [h.topic for h in hits] == ["visits"]
    assert term in {e.term for e in hits[0].evidence}


def test_a_word_list_used_only_in_slots_is_not_a_term(tmp_path):
    watchlist = load_watchlists(_folder(tmp_path, PACK))
    # "МИД" alone is no spelling of anything: the list only fills the slot
    assert not any(k == "мид" for k in watchlist.keys)
    assert detect(Doc(text="МИД объявил о визите.", lang="ru"), watchlist) == ()


@pytest.mark.parametrize("spelling, message", [
    ('"глав* {country.adjective} МИД*"', "unknown slot class 'country.adjective'"),
    ('"глав* {ministre} МИД*"', "unknown slot class 'ministre'"),
    ('"глав* {country.adj МИД*"', "unbalanced braces"),
    ('"{visit} visit"', "cannot name itself"),
])
def test_what_a_slot_cannot_name_is_an_error_with_file_and_line(tmp_path, spelling, message):
    pack = f"""\
    topics:
      - id: t
        title: T
        terms:
          visit:
            en: [visit*,
                 {spelling}]
    """
    folder = _folder(tmp_path, pack)
    found = problems(folder)
    assert len(found) == 1 and found[0].line == 7 and message in found[0].message, found
    with pytest.raises(ConfigError):
        load_watchlists(folder)


def test_gazetteer_slots_need_the_gazetteer(tmp_path):
    found = problems(_folder(tmp_path, PACK, gazetteer=False))
    assert found and all("needs the gazetteer" in p.message for p in found)


def test_the_default_packs_slots_cover_the_nationalities_they_replaced():
    # ministerial_visit.yaml used to spell out "глав* <nationality>* <ministry>" for these 60
    # nationalities and six ministry words; the slot must still stand for every one of them.
    stems = ("российск американск египетск турецк китайск иранск саудовск индийск французск германск немецк "
             "британск израильск сирийск иракск украинск белорусск японск катарск эмиратск казахстанск "
             "азербайджанск армянск сербск венгерск польск итальянск испанск пакистанск северокорейск "
             "южнокорейск корейск ливийск алжирск марокканск иорданск ливанск оманск кувейтск афганск "
             "вьетнамск индонезийск бразильск венесуэльск кубинск южноафриканск суданск эфиопск палестинск "
             "бахрейнск тунисск узбекск киргизск таджикск туркменск грузинск монгольск финск шведск норвежск").split()
    assert len(stems) == 60
    watchlist = load_watchlists(SEED_WATCHLISTS)
    for stem in stems:
        for ministry in ("МИД", "дипломатии", "оборонного ведомства", "военного ведомства", "Минобороны",
                         "внешнеполитического ведомства"):
            text = f"Глава {stem}ого {ministry} прибыл с визитом в Москву."
            hits = detect(Doc(text=text, lang="ru"), watchlist)
            assert "ministerial_visit" in {h.topic for h in hits}, text
