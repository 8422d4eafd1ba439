"""Noise control with a fake clock: first alert, grouping, follow-ups, suppression, throttle and digest."""

from datetime import timedelta

from alerts import noise
from alerts.settings import GroupingSettings
from tests.alerts.factories import T0, hit, match

GROUPING = GroupingSettings(wait=30, interval=300)


def at(seconds: float):
    return T0 + timedelta(seconds=seconds)


def observe(state, m, now):
    return noise.observe(state, "sub", m, m.topics, now, GROUPING)


def test_five_sources_within_the_wait_give_one_alert_listing_five_sources():
    state, reasons = None, []
    for i in range(5):
        state, reason = observe(state, match(article_id=f"a{i}", source=f"Outlet {i}"), at(i * 5))
        reasons.append(reason)
        assert not state.is_due(at(i * 5))
    assert reasons == ["first", "grouped", "grouped", "grouped", "grouped"]
    assert state.is_due(at(30))
    assert [s.source for s in state.sources] == [f"Outlet {i}" for i in range(5)]
    sent = noise.release(state, at(30))
    assert sent.alerts_sent == 1 and not sent.is_due(at(10_000))


def test_sources_from_the_match_and_its_own_article_are_merged_once():
    state, _ = observe(None, match(article_id="a2", known_sources=("a1",)), at(0))
    state, _ = observe(state, match(article_id="a3", known_sources=("a1", "a2")), at(1))
    assert [s.article_id for s in state.sources] == ["a1", "a2", "a3"]


def test_follow_up_waits_for_the_interval_and_only_when_something_changed():
    state, _ = observe(None, match(article_id="a1"), at(0))
    state = noise.release(state, at(30))
    # the same article again (a re-publication): nothing new
    state, reason = observe(state, match(article_id="a1"), at(40))
    assert reason == "suppressed" and state.due_at is None
    # a new source: a follow-up, but not before 30 + 300 s
    state, reason = observe(state, match(article_id="a2", source="AFP"), at(60))
    assert reason == "changed" and state.due_at == at(330)
    # a new topic meanwhile joins the follow-up already due
    state, reason = observe(state, match(article_id="a3", topics=(hit("patriot"),)), at(100))
    assert reason == "grouped" and state.due_at == at(330)
    state = noise.release(state, at(330))
    assert state.alerts_sent == 2 and set(state.sent_topics) == {"s400", "patriot"}


def test_a_change_long_after_the_interval_is_due_at_once():
    state, _ = observe(None, match(), at(0))
    state = noise.release(state, at(30))
    state, reason = observe(state, match(article_id="a9", topics=(hit("thaad"),)), at(5000))
    assert reason == "changed" and state.due_at == at(5000)


def test_topics_merge_keeping_the_best_score():
    state, _ = observe(None, match(topics=(hit("s400", 0.5),)), at(0))
    state, _ = observe(state, match(article_id="a2", topics=(hit("s400", 0.8),)), at(1))
    assert [(h.topic, h.score) for h in state.topics] == [("s400", 0.8)]


def test_stale_stories_are_forgotten_only_when_nothing_is_due():
    state, _ = observe(None, match(), at(0))
    assert not noise.is_stale(state, at(10**6), timedelta(days=1))
    assert noise.is_stale(noise.release(state, at(30)), at(10**6), timedelta(days=1))


def test_throttle_admits_n_per_hour_then_holds_for_one_digest():
    throttle = noise.ThrottleState(subscription="sub")
    verdicts = []
    for i in range(5):
        throttle, verdict = noise.admit(throttle, at(i * 60), 3)
        verdicts.append(verdict)
        if verdict == "throttled":
            throttle = noise.hold(throttle, noise.HeldAlert(story_id=f"s{i}", title="t", url=None, source=None,
                                                            lang="en", topics=("s400",), sources_count=1,
                                                            held_at=at(i * 60)))
    assert verdicts == ["admitted"] * 3 + ["throttled"] * 2
    # the hour is still full: the digest waits
    assert noise.take_digest(throttle, at(3599), 3)[1] == ()
    throttle, held = noise.take_digest(throttle, at(3600), 3)
    assert [h.story_id for h in held] == ["s3", "s4"] and throttle.held == ()
    # the digest counted as one alert of the hour
    assert len(throttle.sent_at) == 3


def test_no_throttle_configured_admits_everything():
    throttle = noise.ThrottleState(subscription="sub")
    for i in range(100):
        throttle, verdict = noise.admit(throttle, at(i), None)
        assert verdict == "admitted"
