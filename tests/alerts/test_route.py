"""route(): a table of Matches and subscriptions with the decision and reason each must give."""

from datetime import timedelta

import pytest

from alerts.route import route, route_one
from alerts.subscriptions import Silence, Subscription
from tests.alerts.factories import ARABIC_TITLE, RUSSIAN_TITLE, T0, hit, match


def sub(**fields) -> Subscription:
    return Subscription(**{"name": "s", "url": "https://hooks.example/x", "secret_env": "S", **fields})


def silence(expires_in: float = 3600, **matchers) -> Silence:
    return Silence(matchers=matchers, expires_at=T0 + timedelta(seconds=expires_in))


TWO_TOPICS = (hit("s400", 0.9, "high", "С-400"), hit("patriot", 0.4, "medium", "Patriot"))

CASES = [
    # (id, subscription fields, match fields, silences, deliver, reason, topics kept)
    ("all topics", {}, {}, [], True, "matched", ["s400"]),
    ("disabled", {"enabled": False}, {}, [], False, "disabled", []),
    ("wanted language", {"languages": ["ar"]}, {"lang": "ar", "title": ARABIC_TITLE}, [], True, "matched", ["s400"]),
    ("other language", {"languages": ["ar"]}, {"lang": "ru", "title": RUSSIAN_TITLE}, [], False, "language_filtered", []),
    ("unknown language", {"languages": ["ar"]}, {"lang": None}, [], False, "language_filtered", []),
    ("language case", {"languages": ["AR"]}, {"lang": "ar"}, [], True, "matched", ["s400"]),
    ("source excluded", {"sources": {"exclude": ["tass"]}}, {"source": "TASS"}, [], False, "source_excluded", []),
    ("source not included", {"sources": {"include": ["Reuters"]}}, {"source": "TASS"}, [], False,
     "source_not_included", []),
    ("source included", {"sources": {"include": ["reuters"]}}, {"source": "Reuters"}, [], True, "matched", ["s400"]),
    ("topic not wanted", {"topics": ["thaad"]}, {}, [], False, "topic_filtered", []),
    ("one of two topics", {"topics": ["patriot"]}, {"topics": TWO_TOPICS}, [], True, "matched", ["patriot"]),
    ("score floor", {"min_score": 0.5}, {"topics": TWO_TOPICS}, [], True, "matched", ["s400"]),
    ("score too low", {"min_score": 0.95}, {"topics": TWO_TOPICS}, [], False, "score_below_min", []),
    ("severity floor", {"min_severity": "high"}, {"topics": TWO_TOPICS}, [], True, "matched", ["s400"]),
    ("severity too low", {"min_severity": "critical"}, {"topics": TWO_TOPICS}, [], False, "severity_below_min", []),
    ("silenced topic", {}, {}, [silence(topic="s400")], False, "silenced", []),
    ("silence mutes one topic", {}, {"topics": TWO_TOPICS}, [silence(topic="S400")], True, "matched", ["patriot"]),
    ("silence by term (Cyrillic)", {}, {"topics": TWO_TOPICS}, [silence(term="с-400")], True, "matched", ["patriot"]),
    ("silence by source", {}, {"source": "TASS"}, [silence(source="tass")], False, "silenced", []),
    ("silence by language", {}, {"lang": "ar"}, [silence(language="ar")], False, "silenced", []),
    ("silence needs all matchers", {}, {"source": "Reuters"}, [silence(topic="s400", source="TASS")], True,
     "matched", ["s400"]),
    ("expired silence", {}, {}, [silence(expires_in=-1, topic="s400")], True, "matched", ["s400"]),
]


@pytest.mark.parametrize("name, sub_fields, match_fields, silences, deliver, reason, kept", CASES,
                         ids=[c[0] for c in CASES])
def test_route_decisions(name, sub_fields, match_fields, silences, deliver, reason, kept):
    decision = route_one(match(**match_fields), sub(**sub_fields), silences, T0)
    assert (decision.deliver, decision.reason, [h.topic for h in decision.topics]) == (deliver, reason, kept)


def test_silence_scoped_to_other_subscriptions_does_not_apply():
    scoped = Silence(matchers={"topic": "s400"}, expires_at=T0 + timedelta(hours=1), subscriptions=("other",))
    assert route_one(match(), sub(), [scoped], T0).reason == "matched"


def test_route_gives_one_decision_per_subscription_in_order():
    decisions = route(match(lang="ar"), [sub(name="a"), sub(name="b", languages=["ru"])], [], T0)
    assert [(d.subscription, d.reason) for d in decisions] == [("a", "matched"), ("b", "language_filtered")]
