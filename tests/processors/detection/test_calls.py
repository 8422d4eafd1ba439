"""Calls versus visits (issue 16): `ministerial_call` for phone and video calls, `ministerial_visit`
for meeting in person; which offices count as ministers; the seed article and a call-only desk."""

import json

import pytest

from alerts.route import route_one
from alerts.subscriptions import Subscription, load_subscriptions
from processors.detection import detect
from processors.detection.evaluate import ALL, score_labelled
from tests.alerts.factories import T0, match
from tests.processors.detection.conftest import DATA, REPO, Doc

SEED_ARTICLE = REPO / "seeds" / "articles" / "rt-arabic-egypt-russia-2plus2.txt"
TOPICS = ("ministerial_call", "ministerial_visit")
# calls.jsonl: 126 texts written blind from the two topic definitions (see calls.md). Blind, the
# visit topic scored F1 0.787-0.828 (it counted calls) and calls 0; the packs were then tuned on
# this set, so this is a floor the packs must keep, not an estimate for unseen news.
CALLS_FLOOR = 0.93


def _topics(watchlist, text, title="", lang=None):
    return {hit.topic for hit in detect(Doc(title=title, text=text, lang=lang), watchlist)}


def test_calls_set_is_balanced_and_both_topics_stay_above_the_floor(seed_watchlist):
    rows = [json.loads(line) for line in (DATA / "calls.jsonl").read_text(encoding="utf-8").splitlines() if line]
    assert len({r["id"] for r in rows}) == len(rows) == 126
    results = []
    for lang in ("ar", "en", "ru"):
        mine = [r for r in rows if r["lang"] == lang]
        assert len(mine) == 42
        assert sum(set(r["labels"]) == {"ministerial_call"} for r in mine) >= 10  # calls only
        assert sum(set(r["labels"]) == {"ministerial_visit"} for r in mine) >= 10  # visits only
        assert sum(set(r["labels"]) == set(TOPICS) for r in mine) >= 15  # a call announcing a visit, or the reverse
        assert sum(not r["labels"] for r in mine) >= 7  # hard negatives
    for row in rows:
        detected = frozenset(h.topic for h in detect(Doc(title=row["title"], text=row["text"], lang=row["lang"]),
                                                     seed_watchlist))
        results.append((row["lang"], frozenset(row["labels"]), detected))
    table = score_labelled(results, [t.id for t in seed_watchlist.topics])
    cells = {(topic, lang): round(table[(topic, lang)].f1, 3) for topic in TOPICS for lang in ("ar", "en", "ru", ALL)}
    assert {key: f1 for key, f1 in cells.items() if f1 < CALLS_FLOOR} == {}
    assert table[(ALL, ALL)].fp == 0 or table[(ALL, ALL)].f1 >= CALLS_FLOOR  # no other topic wakes up either


@pytest.mark.parametrize("title, text, lang", [
    ("", "Foreign Minister Sergei Lavrov held a telephone conversation with his Turkish counterpart.", "en"),
    ("Rubio calls Saudi counterpart", "The Secretary of State spoke by phone with the Saudi foreign minister.", "en"),
    ("", "The defence ministers of Norway and Denmark held talks by video link on Baltic security.", "en"),
    ("Cairo, Ankara talks", "Egypt's foreign minister and his Turkish counterpart discussed Libya in a phone call. "
     "The two ministers also discussed Gaza and agreed to stay in touch.", "en"),
    ("", "Министр обороны России провел телефонный разговор с белорусским коллегой. Стороны обсудили учения.", "ru"),
    ("", "Главы МИД Египта и Иордании обсудили по телефону ситуацию в секторе Газа.", "ru"),
    ("", "Министры иностранных дел Франции и Германии провели переговоры в режиме видеоконференции.", "ru"),
    ("", "بحث وزير الخارجية العماني في اتصال هاتفي مع نظيره الإيراني التطورات في المنطقة.", "ar"),
    ("", "تلقى وزير الدفاع الكويتي اتصالا هاتفيا من نظيره البريطاني، وبحث الجانبان التعاون العسكري.", "ar"),
    # the verb before the subject, and no "telephone" word
    ("", "تلقى وزير الدفاع السعودي اتصالا من وزير الدفاع الأمريكي، بحث الجانبان خلاله التعاون العسكري.", "ar"),
    # taking part by video link in a meeting is not being at the meeting
    ("", "The defence minister took part by video link in a meeting of the Ukraine Defense Contact Group.", "en"),
])
def test_a_call_is_not_a_visit(seed_watchlist, title, text, lang):
    assert _topics(seed_watchlist, text, title, lang) == {"ministerial_call"}


@pytest.mark.parametrize("title, text, lang", [
    ("", "In a phone call on Monday the two foreign ministers agreed that the Turkish minister will visit Cairo "
     "next week.", "en"),
    ("", "Britain's Foreign Secretary spoke by phone with the Kenyan foreign minister and said he would travel "
     "to Nairobi in May.", "en"),
    ("", "Лавров и Фидан провели телефонный разговор и договорились о встрече в Анкаре в начале месяца.", "ru"),
    ("", "Turkey's foreign minister said he had a productive call with the Iranian foreign minister, and the two "
     "will meet in Tehran next month.", "en"),
    ("", "أجرى وزير الخارجية الأردني اتصالا هاتفيا مع نظيره التركي، واتفق الوزيران على عقد لقاء في عمّان.", "ar"),
    # a visit that mentions the earlier call carries both
    ("", "The Greek foreign minister held talks with his Turkish counterpart in Ankara on Friday. The visit was "
     "agreed when the two ministers spoke by phone last month.", "en"),
])
def test_a_call_that_announces_or_prepared_a_visit_raises_both(seed_watchlist, title, text, lang):
    assert _topics(seed_watchlist, text, title, lang) == set(TOPICS)


@pytest.mark.parametrize("title, text, lang, expected", [
    # ministers with a "Secretary" title
    ("", "The UK Foreign Secretary arrived in Nairobi for talks with Kenya's foreign minister.", "en",
     {"ministerial_visit"}),
    ("", "The US Secretary of Defense visited Tokyo and met his Japanese counterpart.", "en", {"ministerial_visit"}),
    ("", "The US Secretary of State held a phone call with Egypt's foreign minister.", "en", {"ministerial_call"}),
    # civil servants: India's Foreign and Defence Secretaries, deputies, assistants
    ("", "India's Foreign Secretary arrived in Dhaka for talks with Bangladesh's foreign secretary.", "en", set()),
    ("", "Indian Defence Secretary held a phone call with his Australian counterpart.", "en", set()),
    ("", "Deputy Foreign Minister Andrei Rudenko held a telephone conversation with the Chinese ambassador.", "en",
     set()),
    ("", "التقى معاون وزير الخارجية السوري المبعوث الروسي وبحث معه العملية السياسية.", "ar", set()),
    # an appeal, an interview, a phone-in, a press conference
    ("", "The foreign minister called for an immediate ceasefire and urged both sides to talk.", "en", set()),
    ("", "The foreign minister said in a phone interview with the BBC that talks would resume.", "en", set()),
    ("", "Asked by phone whether the foreign minister would resign, a spokesman declined to comment.", "en", set()),
    ("", "قال وزير الخارجية في مداخلة هاتفية مع قناة محلية إن المفاوضات مستمرة.", "ar", set()),
    ("", "Лавров на пресс-конференции заявил, что Москва открыта к диалогу и готова сесть за стол переговоров.",
     "ru", set()),
    # other ministers and presidents alone
    ("", "The health minister held a phone call with his Saudi counterpart about the pilgrimage season.", "en", set()),
    ("", "Президент России провел телефонный разговор с президентом Казахстана.", "ru", set()),
])
def test_offices_and_near_misses(seed_watchlist, title, text, lang, expected):
    assert _topics(seed_watchlist, text, title, lang) == expected


def test_the_seed_article_is_a_visit_and_no_call(seed_watchlist):
    # It quotes an analyst "in a phone call with RT": an interview, not a ministers' call.
    topics = _topics(seed_watchlist, SEED_ARTICLE.read_text(encoding="utf-8"), lang="ar")
    assert "ministerial_visit" in topics
    assert "ministerial_call" not in topics


def test_a_call_only_subscription_gets_nothing_for_the_seed_article(seed_watchlist):
    text = SEED_ARTICLE.read_text(encoding="utf-8")
    hits = detect(Doc(text=text, lang="ar"), seed_watchlist)
    seed_match = match(lang="ar", title=text.splitlines()[0], topics=hits)

    def subscription(topics):
        return Subscription(name="desk", url="https://hooks.example/x", secret_env="S", topics=topics)

    calls_only = route_one(seed_match, subscription(["ministerial_call"]), [], T0)
    assert (calls_only.deliver, calls_only.reason) == (False, "topic_filtered")
    visits = route_one(seed_match, subscription(["ministerial_visit"]), [], T0)
    assert visits.deliver and [h.topic for h in visits.topics] == ["ministerial_visit"]


def test_the_call_topic_is_low_severity_and_described(seed_watchlist):
    topics = {t.id: t for t in seed_watchlist.topics}
    assert topics["ministerial_call"].severity == "low"
    assert topics["ministerial_visit"].severity == "medium"
    assert "phone" in topics["ministerial_call"].description
    assert "in person" in topics["ministerial_visit"].description


@pytest.mark.parametrize("name", ["subscriptions.yaml", "deploy-subscriptions.yaml"])
def test_the_demo_subscriptions_take_the_call_topic(name):
    subscriptions = load_subscriptions(REPO / "seeds" / name).subscriptions
    sinks = [s for s in subscriptions if "sink" in s.name]
    assert sinks and all(s.wants_topic("ministerial_call") and s.wants_topic("ministerial_visit") for s in sinks)
