"""Table tests for matching and for each rule type: boundaries, proclitics, wildcards, languages,
near, same sentence, exclusions, field scope, all-of/any-of/none-of, scores and evidence."""

import re
from datetime import datetime, timezone

import pytest

from newswatch.schemas import Article, TopicHit

from processors.detection import detect
from tests.processors.detection.conftest import Doc

S400_PACK = """
topics:
  - id: sam
    title: SAM
    severity: high
    terms:
      s400:
        any: [S-400]
        ar: [اس-400]
"""


def topics(article, watchlist):
    return {hit.topic for hit in detect(article, watchlist)}


def surfaces(article, watchlist, topic):
    (hit,) = [h for h in detect(article, watchlist) if h.topic == topic]
    field_text = {"title": article.title, "text": article.text, "summary": article.summary}
    for ev in hit.evidence:  # every offset indexes the original text
        assert field_text[ev.field][ev.start:ev.end] == ev.term
        assert ev.term in ev.snippet
    return [ev.term for ev in hit.evidence]


@pytest.mark.parametrize("text, lang", [
    ("Turkey bought the S-400.", "en"),
    ("Россия поставила С-400 Турции.", "ru"),  # Cyrillic Es
    ("تسلمت تركيا منظومة إس-400 الروسية", "ar"),
    ("تسلمت تركيا منظومة اس-400 الروسية", "ar"),
    ("تسلمت تركيا منظومة إس-٤٠٠ الروسية", "ar"),  # Arabic-Indic digits
    ("The S\u2011400 batteries", "en"),  # non-breaking hyphen
    ("The Ѕ-400 batteries", "en"),  # Cyrillic dze homoglyph
    ("The S400 and the S 400", "en"),
    ("Turkey's S-400s are idle", "en"),  # letters after a code: plural
    ("the S-400E export version", "en"),  # variant letters
    ("منظومة S-400 الروسية", "ar"),  # Latin code inside Arabic text
])
def test_every_spelling_of_s400_matches(compile_pack, text, lang):
    watchlist = compile_pack(S400_PACK)
    assert topics(Doc(text=text, lang=lang), watchlist) == {"sam"}


@pytest.mark.parametrize("text", [
    "The S-4000 is not a missile",  # digits continue
    "The XS-400 jacket",  # letters before
    "The S-4001 prototype",  # a longer number
])
def test_codes_do_not_match_inside_longer_tokens(compile_pack, text):
    assert topics(Doc(text=text, lang="en"), compile_pack(S400_PACK)) == set()


VISIT_PACK = """
topics:
  - id: visit
    title: Visits
    terms:
      visit:
        ar: [زيارة, الدفاع الجوي]
        ru: [визит*, министр* обороны, военно-техническ* сотрудничеств*]
        en: [visit]
"""


@pytest.mark.parametrize("text, lang, surface", [
    # Evidence covers the term itself; the attached proclitics are allowed but not part of it.
    ("زيارة رسمية", "ar", "زيارة"),
    ("وزيارة رسمية", "ar", "زيارة"),  # و
    ("فزيارة", "ar", "زيارة"),  # ف
    ("بزيارة رسمية", "ar", "زيارة"),  # ب
    ("لزيارة موسكو", "ar", "زيارة"),  # ل
    ("كزيارة", "ar", "زيارة"),  # ك
    ("الزيارة التاريخية", "ar", "زيارة"),  # ال
    ("وبالزيارة", "ar", "زيارة"),  # و + ب + ال
    ("فللزيارة", "ar", "زيارة"),  # ف + ل + ال written لل
    ("زِيَارَةٌ", "ar", "زِيَارَةٌ"),  # diacritics
    ("زيـــارة", "ar", "زيـــارة"),  # tatweel
    ("زيارہ", "ar", None),  # a different letter (Urdu heh goal) is not ta marbuta
    ("وللدفاع الجوي", "ar", "للدفاع الجوي"),  # ل + الدفاع is written للدفاع
    ("والدفاع الجوي", "ar", "الدفاع الجوي"),
    ("مزيارة", "ar", None),  # م is not a proclitic: inside a longer word
    ("Визит министра", "ru", "Визит"),
    ("после визита в Каир", "ru", "визита"),  # wildcard takes the ending
    ("визитом", "ru", "визитом"),
    ("визитёр", "ru", "визитёр"),  # ё folds to е, and the wildcard carries on
    ("превизит", "ru", None),  # no match inside a word
    ("министром обороны", "ru", "министром обороны"),  # a wildcard inside a phrase
    ("министры обороны", "ru", "министры обороны"),
    ("министрам иностранных дел", "ru", None),  # the next word differs
    ("министр оборонной промышленности", "ru", None),  # the last word has no wildcard
    ("военно-технического сотрудничества", "ru", "военно-технического сотрудничества"),
    ("a visit to Cairo", "en", "visit"),
    ("visitors", "en", None),  # no wildcard: no suffix
])
def test_boundaries_proclitics_and_wildcards(compile_pack, text, lang, surface):
    watchlist = compile_pack(VISIT_PACK)
    article = Doc(text=text, lang=lang)
    if surface is None:
        assert topics(article, watchlist) == set()
    else:
        assert surfaces(article, watchlist, "visit") == [surface]


def test_language_specific_terms_apply_to_their_language_or_unknown(compile_pack):
    watchlist = compile_pack(VISIT_PACK)
    assert topics(Doc(text="визит", lang="ru"), watchlist) == {"visit"}
    assert topics(Doc(text="визит", lang="ru-RU"), watchlist) == {"visit"}
    assert topics(Doc(text="визит", lang=None), watchlist) == {"visit"}
    assert topics(Doc(text="визит", lang="en"), watchlist) == set()


RULES_PACK = """
topics:
  - id: deal
    title: Arms deals
    terms:
      buy: {en: [buy, bought, deal]}
      weapon: {en: [missile*, tanks]}
      phrase: {en: [arms deal]}
      football: {en: [striker, transfer fee]}
      car: {en: [Mercedes]}
      sport_news: {en: [Premier League]}
      listed: {en: [also present]}
    exclude:
      - terms: [football]
        within: 5
      - terms: [sport_news]
      - terms: [listed]
        within: 4
        following: true
    rules:
      - id: phrase
        any_of: [phrase]
        score: 0.9
      - id: near
        all_of: [buy, weapon]
        near: 4
        none_of: [car]
        score: 0.7
  - id: title_only
    title: In the title
    terms:
      word: {en: [missile]}
    rules:
      - id: title
        any_of: [word]
        fields: [title]
  - id: sentence
    title: Same sentence
    terms:
      a: {en: [minister]}
      b: {en: [visit]}
    rules:
      - id: sentence
        all_of: [a, b]
        same_sentence: true
"""


@pytest.mark.parametrize("text, title, expected", [
    ("India bought missiles from France.", "", {"deal"}),  # near: 1 word apart
    ("India bought grain, rice, oil, sugar and then missiles.", "", set()),  # near: too far
    ("India bought Mercedes cars and missiles.", "", set()),  # none_of vetoes the rule
    ("The striker bought tanks of petrol.", "", set()),  # exclusion within 5 words vetoes the hits
    ("An arms deal was signed. " + "word " * 10 + "A striker scored.", "", {"deal"}),  # exclusion too far
    ("An arms deal, said a Premier League club.", "", set()),  # exclusion without `within`: whole article
    ("Also present: they bought missiles.", "", set()),  # `following`: hits just after the phrase go
    ("They bought missiles; also present: envoys.", "", {"deal"}),  # ...but not the hits before it
    ("Also present: " + "word " * 5 + "they bought missiles.", "", {"deal"}),  # nor those beyond N words
    ("", "Missile test", {"title_only"}),  # field scope: title
    ("Missile test", "", set()),  # field scope: not in text
    ("The minister will visit Cairo.", "", {"sentence"}),
    ("The minister spoke. The visit was later.", "", set()),  # two sentences
])
def test_rule_types(compile_pack, text, title, expected):
    assert topics(Doc(text=text, title=title, lang="en"), compile_pack(RULES_PACK)) == expected


def test_scores_combine_fired_rules_and_rule_names_the_best(compile_pack):
    watchlist = compile_pack(RULES_PACK)
    (hit,) = detect(Doc(text="An arms deal: they bought missiles.", lang="en"), watchlist)
    assert hit.rule == "phrase"
    assert hit.score == pytest.approx(1 - (1 - 0.9) * (1 - 0.7))
    (hit,) = detect(Doc(text="They bought missiles.", lang="en"), watchlist)
    assert (hit.rule, hit.score) == ("near", 0.7)


# `drop` takes some terms' hits away and leaves the others; `same_sentence` scopes an exclusion to the
# sentence of its hit; `anywhere` terms must be found but need not sit in the rule's window.
CALLS_PACK = """
topics:
  - id: visit
    title: Visits
    terms:
      minister: {en: [minister]}
      visit: {en: [visit, arrived, meeting]}
      talks: {en: [talks, discussed]}
      call: {en: [by phone]}
      video: {en: [video meeting]}
      leaders: {en: [the ministers]}
      faisal: {en: [faisal]}
    exclude:
      - terms: [call]
        same_sentence: true
        drop: [talks]
      - terms: [video]
        within: 0
        drop: [visit]
      - terms: [faisal]
        drop: [visit]
    rules:
      - id: minister_visit
        all_of: [minister]
        any_of: [visit, talks]
        near: 10
      - id: ministers_visit
        all_of: [leaders, visit]
        anywhere: [minister]
        near: 3
"""

FAR = "The foreign minister spoke at length about the region, its many problems and the long winter ahead. "


@pytest.mark.parametrize("text, expected", [
    ("The minister held talks in Cairo.", True),
    ("The minister discussed Gaza by phone.", False),  # the call's sentence loses its talks words...
    ("The minister discussed Gaza by phone and will visit Cairo.", True),  # ...not its visit words
    ("The minister held talks in Cairo. They spoke by phone before.", True),  # another sentence keeps them
    ("The minister joined a video meeting.", False),  # within 0: the overlapping "meeting" goes...
    ("The minister arrived for a video meeting.", True),  # ...only the overlapping hit goes
    ("Faisal said the minister arrived.", False),  # no window: the visit words go in the whole article
    ("Faisal said the minister held talks.", True),  # and only those terms: talks stay, the topic is not vetoed
    (FAR + "Later the ministers arrived in Oman.", True),  # anywhere: the title far away
    ("Later the ministers arrived in Oman.", False),  # ...but it must be there
])
def test_drop_same_sentence_and_anywhere(compile_pack, text, expected):
    watchlist = compile_pack(CALLS_PACK)
    assert (topics(Doc(text=text, lang="en"), watchlist) == {"visit"}) is expected


def test_anywhere_terms_join_the_evidence(compile_pack):
    (hit,) = detect(Doc(text=FAR + "Later the ministers arrived in Oman.", lang="en"), compile_pack(CALLS_PACK))
    assert hit.rule == "ministers_visit"
    assert [e.term for e in hit.evidence] == ["minister", "the ministers", "arrived"]


def test_all_of_needs_every_term_and_any_of_needs_one(compile_pack):
    watchlist = compile_pack("""
    topics:
      - id: t
        title: T
        terms:
          a: {en: [alpha]}
          b: {en: [beta]}
          c: {en: [gamma]}
          d: {en: [delta]}
        rules:
          - id: r
            all_of: [a, b]
            any_of: [c, d]
    """)
    assert topics(Doc(text="alpha beta delta"), watchlist) == {"t"}
    assert topics(Doc(text="alpha beta"), watchlist) == set()
    assert topics(Doc(text="alpha gamma"), watchlist) == set()


def test_cross_topic_reference_and_default_rule(compile_pack):
    watchlist = compile_pack("""
    topics:
      - id: systems
        title: Systems
        terms:
          named: {any: [THAAD]}
      - id: deals
        title: Deals
        terms:
          buy: {en: [buy]}
        rules:
          - id: buy_system
            all_of: [buy, systems.named]
            near: 3
    """)
    assert topics(Doc(text="Riyadh will buy THAAD", lang="en"), watchlist) == {"systems", "deals"}
    assert topics(Doc(text="THAAD", lang="en"), watchlist) == {"systems"}


def test_regex_terms_run_on_normalised_text(compile_pack):
    watchlist = compile_pack(r"""
    topics:
      - id: codes
        title: Codes
        terms:
          hq: {regex: ['hq ?\d{1,2}[a-z]?']}
    """)
    article = Doc(text="China showed the HQ-9B and HQ\u201116 systems", lang="en")
    assert surfaces(article, watchlist, "codes") == ["HQ-9B", "HQ\u201116"]


def test_results_are_sorted_and_evidence_is_outermost(seed_watchlist):
    article = Doc(title="Poland signs deal for Patriot batteries",
                  text="Warsaw will buy more Patriot missile batteries.", lang="en")
    hits = detect(article, seed_watchlist)
    assert [h.topic for h in hits] == sorted(h.topic for h in hits) == ["air_defense_system", "arms_deal"]
    air = hits[0]
    assert "Patriot batteries" in [e.term for e in air.evidence]
    spans = [(e.field, e.start, e.end) for e in air.evidence]
    assert not any(f1 == f2 and s1 <= s2 and e2 <= e1 and (s1, e1) != (s2, e2)
                   for f1, s1, e1 in spans for f2, s2, e2 in spans)


def test_detect_is_pure_and_repeatable(seed_watchlist):
    article = Doc(text="Russia delivered S-400 systems to Turkey under the contract.", lang="en")
    assert detect(article, seed_watchlist) == detect(article, seed_watchlist)
    assert detect(Doc(), seed_watchlist) == ()


def test_detect_takes_a_schema_article_and_returns_schema_topic_hits(seed_watchlist):
    article = Article(id="a1", title="Турция получила С‑400", text="Комплексы ПВО уже на боевом дежурстве.",
                      lang="ru", fetched_at=datetime(2026, 1, 1, tzinfo=timezone.utc), feed={"url": "file:x"})
    hits = detect(article, seed_watchlist)
    assert all(isinstance(h, TopicHit) for h in hits)
    air = next(h for h in hits if h.topic == "air_defense_system")
    assert air.severity == "high" and air.title
    assert [(e.term, e.field) for e in air.evidence][:2] == [("С‑400", "title"), ("ПВО", "text")]


@pytest.mark.parametrize("filler_words", [0, 3000])  # short texts count words, long ones index them
def test_near_and_exclusions_agree_on_short_and_long_texts(compile_pack, filler_words):
    watchlist = compile_pack(RULES_PACK)
    filler = "word " * filler_words
    assert topics(Doc(text=filler + "India bought missiles.", lang="en"), watchlist) == {"deal"}
    assert topics(Doc(text=filler + "India bought a b c d e f missiles.", lang="en"), watchlist) == set()
    assert topics(Doc(text=filler + "The striker bought tanks.", lang="en"), watchlist) == set()
    long_hits = detect(Doc(text=filler + "India bought missiles.", lang="en"), watchlist)
    (evidence,) = [e for e in long_hits[0].evidence if e.term == "missiles"]
    assert evidence.start == len(filler) + len("India bought ")


def test_regexes_cannot_backtrack_catastrophically(compile_pack):
    # (a+)+$ takes exponential time in a backtracking engine on "aaaa...!"; RE2 is linear.
    watchlist = compile_pack(r"""
    topics:
      - id: r
        title: R
        terms:
          evil: {regex: ['(a+)+$']}
    """)
    assert topics(Doc(text="a" * 20000 + "!"), watchlist) == set()
    assert topics(Doc(text="x " + "a" * 50), watchlist) == {"r"}


@pytest.mark.parametrize("text", [
    "one. two! three? four",
    "runs... of marks?! end",
    "no end.here and 3.5 km.",
    "line\nbreaks\n\nand. a run.\nthen",
    "عربي؟ نعم؛ لا. \nنهاية",
    "trailing mark.",
    "",
])
def test_sentence_index_is_the_count_of_sentence_ends_before_it(text):
    # The definition: a run of . ! ? ؟ ؛ … followed by whitespace, or a line break, ends a sentence.
    from processors.detection.engine import FieldText
    from processors.detection.normalize import Normalized

    ends = [m.end() for m in re.finditer(r"[.!?؟؛…]+(?=\s)|\n", text)]
    field = FieldText("text", Normalized(text, text))
    assert [field.sentence(pos) for pos in range(len(text) + 1)] == \
        [sum(end <= pos for end in ends) for pos in range(len(text) + 1)]


def test_sentence_ends_match_the_regex_definition_on_any_normalised_text():
    # _sentence_ends finds the ends with str.split, not a regex: compare the two on random text
    # over the characters that matter (marks, runs of them, both whitespace kinds, separators).
    import random

    from processors.detection.engine import _sentence_ends

    rng = random.Random(4)
    for _ in range(20000):
        text = "".join(rng.choice("ab .!?…\n؟؛.\x1c ") for _ in range(rng.randint(0, 16)))
        expected = [m.end() for m in re.finditer(r"[.!?؟؛…]+(?=\s)|\n", text)]
        assert _sentence_ends(text) == expected, repr(text)


def test_a_lone_surrogate_in_a_text_does_not_stop_detection(seed_watchlist):
    # The automaton reads UTF-8; a lone UTF-16 half (which a str can hold) is read as U+FFFD,
    # one character for one, so the offsets still index the original text.
    text = "Egypt \ud800 signed a contract to buy S-400 air defence systems."
    hits = detect(Doc(title="Deal", text=text, lang="en"), seed_watchlist)
    evidence = {e.term: (e.start, e.end) for hit in hits for e in hit.evidence}
    assert {hit.topic for hit in hits} >= {"arms_deal", "air_defense_system"}
    assert text[slice(*evidence["S-400"])] == "S-400"


def test_a_lone_surrogate_does_not_stop_regex_terms(compile_pack):
    # RE2 reads UTF-8 too: the regexes see the text with U+FFFD in the surrogate's place.
    watchlist = compile_pack("""
    topics:
      - id: codes
        title: Codes
        terms:
          code: {regex: ['hq ?9[a-z]?']}
    """)
    text = "The \ud800 HQ-9B battery."
    (hit,) = detect(Doc(text=text, lang="en"), watchlist)
    assert text[hit.evidence[0].start:hit.evidence[0].end] == "HQ-9B"
