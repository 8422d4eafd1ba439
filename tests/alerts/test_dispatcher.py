"""The dispatcher on the real broker with real local HTTP receivers.

Expectations are stated as "a webhook arrives within a deadline", never as sleeps.
"""

import asyncio
import base64
import json
from datetime import timedelta

import pytest
from prometheus_client import generate_latest
from standardwebhooks.webhooks import Webhook

from alerts.settings import AlertsSettings, GroupingSettings
from alerts.subscriptions import Endpoint, Silence, Subscription, SubscriptionsFile
from newswatch.kafka_settings import Topics
from newswatch.secrets import Secret
from tests.alerts.factories import ARABIC_TITLE, FakeClock, T0, hit, match
from tests.alerts.receivers import Receiver, always, fail_first, produce, running_dispatcher
from tests.support.kafka import read_records
from tests.support.waiting import async_wait_until

pytestmark = pytest.mark.integration

SECRET = "whsec_" + base64.b64encode(b"integration-test-signing-key").decode()
FAST = AlertsSettings(allow_private_networks=True, retry_schedule=(0.3, 0.3, 0.3), retry_jitter=0.0,
                      grouping=GroupingSettings(wait=0, interval=60))


def wire(receivers: dict[str, Receiver], **sub_fields):
    subs = tuple(Subscription(name=name, url=r.url, secret_env="S", **sub_fields) for name, r in receivers.items())
    endpoints = {name: Endpoint(url=Secret(r.url), secret=Secret(SECRET, "S"), headers={})
                 for name, r in receivers.items()}
    return subs, endpoints


async def test_500_three_times_then_200_gives_exactly_one_accepted_delivery(kafka_bootstrap, topic_prefix):
    topics = Topics(topic_prefix)
    receiver = Receiver(fail_first(3))
    subs, endpoints = wire({"desk": receiver})
    try:
        async with running_dispatcher(kafka_bootstrap, topics, FAST, SubscriptionsFile(subscriptions=subs),
                                      endpoints) as run:
            await asyncio.to_thread(produce, kafka_bootstrap, topics.matches, [match(title=ARABIC_TITLE, lang="ar")])
            await async_wait_until(lambda: receiver.accepted(), 60, "the fourth attempt is accepted")
            await async_wait_until(lambda: not run.dispatcher.pending, 10, "the pending delivery is cleared")
            metrics = generate_latest(run.registry).decode()
        assert [r.status for r in receiver.requests] == [500, 500, 500, 200]
        assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1
        for request in receiver.requests:
            body = Webhook(SECRET).verify(request.body, request.headers)  # the official library, real clock
            assert body["article"]["title"] == ARABIC_TITLE
        assert 'newswatch_alerts_deliveries_total{outcome="retry",reason="http_500",subscription="desk"} 3.0' in metrics
        assert 'newswatch_alerts_deliveries_total{outcome="delivered",reason="http_2xx",subscription="desk"} 1.0' in metrics
        assert "newswatch_alerts_retries_pending 0.0" in metrics
    finally:
        receiver.close()


async def test_five_sources_of_one_story_within_the_wait_give_one_alert(kafka_bootstrap, topic_prefix):
    topics = Topics(topic_prefix)
    receiver = Receiver()
    subs, endpoints = wire({"desk": receiver}, grouping=GroupingSettings(wait=3, interval=600))
    outlets = ["Reuters", "RT Arabic", "TASS", "Al Jazeera", "The Hindu"]
    matches = [match(article_id=f"a{i}", source=name, known_sources=tuple(f"a{j}" for j in range(i)))
               for i, name in enumerate(outlets)]
    try:
        async with running_dispatcher(kafka_bootstrap, topics, FAST, SubscriptionsFile(subscriptions=subs),
                                      endpoints) as run:
            await asyncio.to_thread(produce, kafka_bootstrap, topics.matches, matches)
            await async_wait_until(lambda: receiver.accepted(), 30, "the grouped alert")
            # the same story again with nothing new must not produce a second alert
            await asyncio.to_thread(produce, kafka_bootstrap, topics.matches, [matches[2]])
            await async_wait_until(
                lambda: sum(v for k, v in _decisions(run).items() if k[1] == "suppressed") >= 1, 30,
                "the repeat is seen and suppressed")
        assert len(receiver.requests) == 1
        body = receiver.requests[0].json()
        assert body["sources_count"] == 5
        assert sorted(s["article_id"] for s in body["sources"]) == [f"a{i}" for i in range(5)]
    finally:
        receiver.close()


def _decisions(run) -> dict:
    found = {}
    for metric in run.registry.collect():
        if metric.name == "newswatch_alerts_decisions":
            for sample in metric.samples:
                if sample.name.endswith("_total"):
                    found[(sample.labels["subscription"], sample.labels["reason"])] = sample.value
    return found


async def test_silences_mute_matching_topics_for_one_subscription(kafka_bootstrap, topic_prefix):
    topics = Topics(topic_prefix)
    muted, open_ = Receiver(), Receiver()
    subs, endpoints = wire({"muted": muted, "open": open_})
    silence = Silence(matchers={"topic": "s400", "source": "TASS"}, expires_at=T0 + timedelta(days=3650),
                      subscriptions=("muted",), comment="already followed")
    matches = [match(story_id="st-tass", article_id="t1", source="TASS"),
               match(story_id="st-patriot", article_id="p1", source="TASS", topics=(hit("patriot"),)),
               match(story_id="st-reuters", article_id="r1", source="Reuters")]
    try:
        async with running_dispatcher(kafka_bootstrap, topics, FAST,
                                      SubscriptionsFile(subscriptions=subs, silences=(silence,)), endpoints) as run:
            await asyncio.to_thread(produce, kafka_bootstrap, topics.matches, matches)
            await async_wait_until(lambda: len(open_.accepted()) == 3, 30, "the open subscription gets all three")
            await async_wait_until(lambda: len(muted.accepted()) == 2, 30, "the muted one gets the other two")
            assert _decisions(run)[("muted", "silenced")] == 1
        assert sorted(r.json()["story_id"] for r in muted.accepted()) == ["st-patriot", "st-reuters"]
    finally:
        muted.close()
        open_.close()


async def test_throttle_holds_the_excess_and_sends_one_digest_when_the_hour_allows(kafka_bootstrap, topic_prefix):
    topics = Topics(topic_prefix)
    receiver = Receiver()
    subs, endpoints = wire({"desk": receiver}, throttle={"max_per_hour": 2})
    clock = FakeClock()
    stories = [match(story_id=f"story-{i}", article_id=f"a{i}", title=f"{ARABIC_TITLE} {i}") for i in range(5)]
    try:
        async with running_dispatcher(kafka_bootstrap, topics, FAST, SubscriptionsFile(subscriptions=subs),
                                      endpoints, clock=clock) as run:
            await asyncio.to_thread(produce, kafka_bootstrap, topics.matches, stories)
            await async_wait_until(lambda: _decisions(run).get(("desk", "throttled")) == 3, 30,
                                   "three of five stories held by the throttle")
            await async_wait_until(lambda: len(receiver.accepted()) == 2, 30, "the two admitted alerts")
            clock.advance(3600)
            run.dispatcher._wake.set()
            await async_wait_until(lambda: len(receiver.accepted()) == 3, 30, "the digest after the hour")
        digest = receiver.accepted()[2].json()
        assert (digest["type"], digest["count"]) == ("newswatch.digest", 3)
        assert [a["story_id"] for a in digest["alerts"]] == ["story-2", "story-3", "story-4"]
        assert [r.json()["type"] for r in receiver.accepted()[:2]] == ["newswatch.alert"] * 2
    finally:
        receiver.close()


async def test_410_disables_the_subscription_and_4xx_go_to_the_dlq(kafka_bootstrap, topic_prefix):
    topics = Topics(topic_prefix)
    gone, bad = Receiver(always(410)), Receiver(always(422))
    subs, endpoints = wire({"gone": gone, "bad": bad})
    try:
        async with running_dispatcher(kafka_bootstrap, topics, FAST, SubscriptionsFile(subscriptions=subs),
                                      endpoints) as run:
            await asyncio.to_thread(produce, kafka_bootstrap, topics.matches, [match(story_id="s1", article_id="a1")])
            letters = await asyncio.to_thread(read_records, kafka_bootstrap, topics.alerts_dlq, min_count=2,
                                              timeout=30)
            assert "gone" in run.dispatcher.disabled
            await asyncio.to_thread(produce, kafka_bootstrap, topics.matches, [match(story_id="s2", article_id="a2")])
            await async_wait_until(lambda: len(bad.requests) == 2, 30, "the healthy-but-rejecting one keeps receiving")
            assert _decisions(run).get(("gone", "disabled")) is None  # disabled ones are not even routed
            metrics = generate_latest(run.registry).decode()
        assert len(gone.requests) == 1, "nothing more is sent to a URL that answered 410"
        by_sub = {json.loads(r.value)["subscription"]: json.loads(r.value) for r in letters}
        assert (by_sub["gone"]["reason"], by_sub["gone"]["status"], by_sub["gone"]["attempts"]) == ("http_410", 410, 1)
        assert (by_sub["bad"]["reason"], by_sub["bad"]["status"]) == ("http_422", 422)
        assert json.loads(by_sub["bad"]["body"])["story_id"] == "s1"
        assert 'newswatch_alerts_subscription_disabled{subscription="gone"} 1.0' in metrics
    finally:
        gone.close()
        bad.close()


async def test_bad_match_records_go_to_the_dead_letter_topic_with_a_reason(kafka_bootstrap, topic_prefix):
    topics = Topics(topic_prefix)
    receiver = Receiver()
    subs, endpoints = wire({"desk": receiver})
    future = match(story_id="good-after").to_json_dict() | {"schema": "newswatch.match/v99"}
    try:
        async with running_dispatcher(kafka_bootstrap, topics, FAST, SubscriptionsFile(subscriptions=subs),
                                      endpoints) as run:
            await asyncio.to_thread(_produce_raw, kafka_bootstrap, topics.matches,
                                    [b"not json {", json.dumps(future).encode(), match(story_id="good").encode()])
            await async_wait_until(lambda: receiver.accepted(), 30, "the good record after the bad ones is delivered")
            letters = await asyncio.to_thread(read_records, kafka_bootstrap, topics.articles_dlq, min_count=2)
            assert run.dispatcher.metrics.bad_records._value.get() == 2
        reasons = [json.loads(r.value) for r in letters]
        assert [(d["stage"], d["offset"]) for d in reasons] == [("alerts", 0), ("alerts", 1)]
        assert reasons[0]["error"].startswith("not JSON") and "v99" in reasons[1]["error"]
        assert reasons[0]["value"] == "not json {"
        assert [r.json()["story_id"] for r in receiver.accepted()] == ["good"]
    finally:
        receiver.close()


def _produce_raw(bootstrap: str, topic: str, values: list[bytes]) -> None:
    from kafka import KafkaProducer
    from tests.support.kafka import create_topics

    create_topics(bootstrap, topic)
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for value in values:
        producer.send(topic, key=b"k", value=value)
    producer.flush()
    producer.close()


async def test_a_silence_added_while_running_applies_without_a_restart(kafka_bootstrap, topic_prefix, tmp_path):
    from alerts.silences import SilenceWatcher, add_silence

    topics = Topics(topic_prefix)
    receiver = Receiver()
    subs, endpoints = wire({"desk": receiver})
    path = tmp_path / "subscriptions.yaml"
    path.write_text(f"subscriptions:\n  - name: desk\n    url: {receiver.url}\n    secret_env: S\n", encoding="utf-8")
    try:
        async with running_dispatcher(kafka_bootstrap, topics, FAST, SubscriptionsFile(subscriptions=subs), endpoints,
                                      poll_silences=SilenceWatcher(path).poll) as run:
            await asyncio.to_thread(produce, kafka_bootstrap, topics.matches, [match(story_id="before")])
            await async_wait_until(lambda: receiver.accepted(), 30, "the first story")
            add_silence(path, Silence(matchers={"topic": "s400"}, expires_at=T0 + timedelta(days=3650)))
            await async_wait_until(lambda: run.dispatcher.silences, 30, "the dispatcher reloads the silences")
            await asyncio.to_thread(produce, kafka_bootstrap, topics.matches,
                                    [match(story_id="after"), match(story_id="other", topics=(hit("patriot"),))])
            await async_wait_until(lambda: len(receiver.accepted()) == 2, 30, "the unsilenced story")
            assert _decisions(run)[("desk", "silenced")] == 1
        assert [r.json()["story_id"] for r in receiver.accepted()] == ["before", "other"]
    finally:
        receiver.close()


async def test_a_one_partition_state_topic_from_before_the_scale_out_keeps_working(kafka_bootstrap, topic_prefix):
    """An existing deployment: its state topic has one partition and holds a pending delivery."""
    from datetime import datetime, timezone

    from kafka import KafkaProducer

    from alerts.dispatcher import routed_topic, state_topic
    from alerts.records import PendingDelivery
    from tests.support.kafka import create_topics

    topics = Topics(topic_prefix, partitions=3)
    receiver = Receiver()
    subs, endpoints = wire({"desk": receiver})
    now = datetime.now(timezone.utc)
    pending = PendingDelivery(id="msg_from_the_old_version", subscription="desk", story_id="old-story",
                              body='{"type": "newswatch.alert", "old": true}', created_at=now, next_attempt_at=now)
    await asyncio.to_thread(create_topics, kafka_bootstrap, state_topic(topics), compact=True)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    producer.send(state_topic(topics), key=b"pending/msg_from_the_old_version", value=pending.encode()).get(30)
    producer.close()
    try:
        async with running_dispatcher(kafka_bootstrap, topics, FAST, SubscriptionsFile(subscriptions=subs),
                                      endpoints) as run:
            await async_wait_until(lambda: receiver.accepted(), 60, "the old pending delivery is sent")
            await asyncio.to_thread(produce, kafka_bootstrap, topics.matches, [match(story_id="new-story")])
            await async_wait_until(lambda: len(receiver.accepted()) == 2, 60, "a new match is alerted too")
            assert run.dispatcher.partitions == 1
        assert receiver.accepted()[0].headers["webhook-id"] == "msg_from_the_old_version"
        assert receiver.accepted()[0].body == pending.body.encode()
        assert receiver.accepted()[1].json()["story_id"] == "new-story"
        partitions = await asyncio.to_thread(_partition_count, kafka_bootstrap, routed_topic(topics))
        assert partitions == 1, "the routed topic follows the state topic"
    finally:
        receiver.close()


async def test_a_routed_topic_that_does_not_match_the_state_topic_stops_the_start(kafka_bootstrap, topic_prefix):
    from alerts.dispatcher import ensure_topics, routed_topic, state_topic
    from newswatch.errors import BrokerError
    from tests.support.kafka import create_topics

    topics = Topics(topic_prefix, partitions=3)
    await asyncio.to_thread(create_topics, kafka_bootstrap, state_topic(topics), partitions=3, compact=True)
    await asyncio.to_thread(create_topics, kafka_bootstrap, routed_topic(topics), partitions=2)
    with pytest.raises(BrokerError, match=r"alerts.routed has 2 partitions but .*alerts.state has 3"):
        await asyncio.to_thread(ensure_topics, kafka_bootstrap, topics)


def _partition_count(bootstrap: str, topic: str) -> int:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        return len(consumer.partitions_for_topic(topic) or ())
    finally:
        consumer.close()
