"""Story grouping: near-duplicates across feeds share an id; different stories do not."""

import pytest

from processors.stories import (Sketcher, StoryIndex, StoryRecord, normalise, story_id_for, story_words,
                                word_pairs)
from tests.processors.factories import article

HOUR_MS = 3_600_000

WIRE_EN = ("Egypt nears deal for Russian S-400 air defence systems",
           "Cairo and Moscow are close to signing a contract for S-400 long-range air defence systems, "
           "officials said on Thursday after talks between the two countries' foreign and defence "
           "ministers in Moscow. The deal would be Egypt's largest arms purchase from Russia in a decade "
           "and follows months of negotiations over price and delivery dates.")

# Five feeds carrying the wire story with the light edits feeds make.
EDITS = [
    WIRE_EN,
    ("UPDATE 1-Egypt nears deal for Russian S-400 air defence systems", WIRE_EN[1]),
    ("Egypt nears deal for Russian S-400 air-defence systems", WIRE_EN[1].replace("on Thursday", "Thursday")),
    ("Egypt nears deal for Russian S-400 air defence systems - sources",
     "MOSCOW (Reuters) - " + WIRE_EN[1]),
    ("EGYPT NEARS DEAL FOR RUSSIAN S-400 AIR DEFENCE SYSTEMS",
     WIRE_EN[1].replace("largest", "biggest").replace("a decade", "ten years")),
]

SAME_TOPIC_OTHER_STORY = (
    "Turkey says second S-400 battery delivery is complete",
    "Ankara has received the remaining components of its second S-400 battery, the defence ministry "
    "announced, despite renewed warnings of sanctions from Washington over the purchase. Technicians "
    "will spend the coming weeks installing the radar and launchers at a base near the capital.")


def index(**kwargs) -> StoryIndex:
    return StoryIndex(Sketcher(), **kwargs)


@pytest.mark.parametrize("raw, expected", [
    ("S-400", "s 400"),
    ("С-400", "с 400"),
    ("إس-٤٠٠", "اس 400"),
    ("أنظمة الدفاع الجوّي", "انظمه الدفاع الجوي"),
    ("Ёлка «2+2»", "елка 2 2"),
    ("UPDATE 1-Egypt", "update 1 egypt"),
])
def test_normalise_folds_case_script_variants_and_punctuation(raw, expected):
    assert normalise(raw) == expected


def test_normalise_equals_its_definition_as_translation_tables_on_random_text():
    # normalise() avoids str.translate for speed; story ids depend on its exact output, so it is
    # compared with the plain definition: NFKC, casefold, drop the marks, map letters and digits,
    # every run of non-word characters (and "_") a single space.
    import random
    import re
    import unicodedata

    from processors import stories

    table = str.maketrans({**dict.fromkeys(stories._ARABIC_MARK_CODES), **dict(stories._LETTER_VARIANTS),
                           **stories._DIGITS})

    def definition(text: str) -> str:
        text = unicodedata.normalize("NFKC", text).casefold().translate(table)
        return re.sub(r"[^\w]+", " ", text.replace("_", " ")).strip()

    alphabet = ("aZ_ -.,!1\u00a0\t\nÉéﬁ²½ЁёАя" + "".join(map(chr, stories._ARABIC_MARK_CODES))
                + "".join(v for v, _ in stories._LETTER_VARIANTS) + "".join(sorted(stories._DIGITS))[::7])
    rng = random.Random(9)
    for _ in range(20000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14)))
        assert normalise(text) == definition(text), repr(text)


def test_story_words_use_title_then_lead_and_fall_back_to_summary():
    words = story_words("Title here", " ".join(f"w{i}" for i in range(100)))
    assert words[:3] == ["title", "here", "w0"] and len(words) == 2 + 60
    assert story_words("T", "", "the summary") == ["t", "the", "summary"]


def test_word_pairs_overlap_and_single_words_survive():
    assert word_pairs(["a", "b", "c"]) == {b"a b", b"b c"}
    assert word_pairs(["solo"]) == {b"solo"}
    assert word_pairs([]) == set()


def test_five_feeds_with_light_edits_share_one_story_and_list_every_source():
    stories = index()
    ids = []
    for n, (title, text) in enumerate(EDITS):
        assignment = stories.assign(article(f"feed{n}-1", title, text, source=f"Feed {n}",
                                            feed=f"https://feed{n}.example.test/rss"), at_ms=n * HOUR_MS)
        ids.append(assignment.story_id)
    assert len(set(ids)) == 1
    assert ids[0] == story_id_for("en", "feed0-1")
    assert [s.article_id for s in assignment.sources] == [f"feed{n}-1" for n in range(5)]
    assert [s.source for s in assignment.sources] == [f"Feed {n}" for n in range(5)]


def test_same_topic_different_story_gets_another_id():
    stories = index()
    first = stories.assign(article("a", *WIRE_EN), at_ms=0)
    other = stories.assign(article("b", *SAME_TOPIC_OTHER_STORY), at_ms=HOUR_MS)
    assert other.story_id != first.story_id
    assert other.is_new and [s.article_id for s in other.sources] == ["b"]


def test_same_words_in_another_language_is_another_story():
    stories = index()
    first = stories.assign(article("a", *WIRE_EN, lang="en"), at_ms=0)
    second = stories.assign(article("b", *WIRE_EN, lang="fr"), at_ms=1)
    assert first.story_id != second.story_id


def test_story_closes_after_the_window():
    stories = index(window_ms=24 * HOUR_MS)
    first = stories.assign(article("a", *WIRE_EN), at_ms=0)
    late = stories.assign(article("b", *EDITS[1]), at_ms=25 * HOUR_MS)
    assert late.story_id != first.story_id
    assert [r.story_id for r in stories.expire(now_ms=48 * HOUR_MS)] == [first.story_id]
    assert [r.story_id for r in stories.expire(now_ms=48 * HOUR_MS + 1)] == []
    assert [r.story_id for r in stories.expire(now_ms=50 * HOUR_MS)] == [late.story_id]
    assert len(stories) == 0


def test_arabic_and_russian_near_duplicates_collapse():
    ar_title = "مصر تقترب من صفقة منظومات إس-400 الروسية"
    ar_text = ("قالت مصادر إن القاهرة وموسكو تقتربان من توقيع عقد لشراء منظومات الدفاع الجوي إس-400 "
               "بعد محادثات وزيري الخارجية والدفاع في موسكو")
    ru_title = "Египет близок к покупке российских С-400"
    ru_text = ("Каир и Москва близки к подписанию контракта на поставку зенитных ракетных систем С-400, "
               "сообщили источники после переговоров министров иностранных дел и обороны в Москве.")
    stories = index()
    a1 = stories.assign(article("ar1", ar_title, ar_text, lang="ar"), at_ms=0)
    a2 = stories.assign(article("ar2", ar_title.replace("إس-400", "اس-٤٠٠"),
                                ar_text.replace("إس-400", "إس-٤٠٠"), lang="ar"), at_ms=1)
    r1 = stories.assign(article("ru1", ru_title, ru_text, lang="ru"), at_ms=2)
    r2 = stories.assign(article("ru2", ru_title + " — источники", ru_text.replace("сообщили", "рассказали"),
                                lang="ru"), at_ms=3)
    assert a1.story_id == a2.story_id
    assert r1.story_id == r2.story_id
    assert len({a1.story_id, r1.story_id}) == 2


def test_replay_returns_the_same_story_and_the_sources_as_they_were():
    stories = index()
    articles = [article(f"f{n}", *EDITS[n]) for n in range(3)]
    first_pass = [stories.assign(a, at_ms=n) for n, a in enumerate(articles)]
    replayed = [stories.assign(a, at_ms=n) for n, a in enumerate(articles)]
    assert [(r.story_id, r.sources) for r in replayed] == [(f.story_id, f.sources) for f in first_pass]
    assert all(r.record is None for r in replayed)  # nothing new to persist


def test_index_rebuilt_from_persisted_records_behaves_the_same():
    stories = index()
    first = stories.assign(article("a", *WIRE_EN), at_ms=0)
    persisted = [StoryRecord.from_json_dict(first.story_id, first.record.to_json_dict())]
    restarted = index()
    restarted.load(persisted)
    joined = restarted.assign(article("b", *EDITS[3]), at_ms=1)
    assert joined.story_id == first.story_id
    assert [s.article_id for s in joined.sources] == ["a", "b"]


def test_sources_are_capped():
    stories = index(max_sources=2)
    for n in range(4):
        last = stories.assign(article(f"f{n}", *EDITS[n]), at_ms=n)
    assert [s.article_id for s in last.sources] == ["f0", "f1"]


def test_article_without_words_is_its_own_story():
    stories = index()
    one = stories.assign(article("x", "", ""), at_ms=0)
    two = stories.assign(article("y", "", ""), at_ms=0)
    assert one.story_id != two.story_id and one.record is None


def test_the_band_index_finds_the_same_candidates_as_minhash_lsh():
    import random

    from datasketch import MinHashLSH

    from processors.stories import BandIndex

    sketcher = Sketcher()
    rng = random.Random(5)
    vocabulary = [f"w{n}" for n in range(60)]
    texts = [" ".join(rng.choice(vocabulary) for _ in range(rng.randint(3, 25))) for _ in range(200)]
    signatures = [sketcher.sketch(article(f"a{n}", text)) for n, text in enumerate(texts)]
    ours, theirs = BandIndex(threshold=0.5, num_perm=sketcher.num_perm), MinHashLSH(threshold=0.5, num_perm=64)
    for n, signature in enumerate(signatures[:150]):
        ours.insert(f"a{n}", signature)
        theirs.insert(f"a{n}", signature)
    for n in range(0, 150, 3):
        ours.remove(f"a{n}")
        theirs.remove(f"a{n}")
    found = [ours.query(signature) for signature in signatures]
    assert found == [set(theirs.query(signature)) for signature in signatures]
    assert sum(map(len, found)) > 100, "the texts share enough words for bands to collide"
