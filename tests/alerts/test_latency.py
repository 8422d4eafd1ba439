"""50 healthy endpoints keep p99 delivery latency under 1 s while one endpoint hangs and another fails.

Latency is measured end to end: from the test producing the Match to the receiver getting the
POST. The machine is shared, so the bound is the acceptance figure, not a benchmark (see bench/).
"""

import asyncio

import pytest

from alerts.settings import AlertsSettings, GroupingSettings
from alerts.subscriptions import SubscriptionsFile
from newswatch.kafka_settings import Topics
from tests.alerts.factories import match
from tests.alerts.receivers import Receiver, always, produce, running_dispatcher
from tests.alerts.test_dispatcher import wire
from tests.support.waiting import async_wait_until

pytestmark = pytest.mark.integration

HEALTHY = 50
STORIES = 10
SETTINGS = AlertsSettings(allow_private_networks=True, retry_schedule=(0.2,) * 20, retry_jitter=0.0,
                          grouping=GroupingSettings(wait=0, interval=60))


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.99 * len(ordered))) - 1)]


async def test_p99_under_one_second_with_a_hanging_and_a_failing_endpoint(kafka_bootstrap, topic_prefix):
    topics = Topics(topic_prefix)
    healthy = {f"healthy{i:02d}": Receiver() for i in range(HEALTHY)}
    hanging, failing = Receiver(lambda attempt: None), Receiver(always(500))
    subs, endpoints = wire({**healthy, "hanging": hanging, "failing": failing})
    try:
        async with running_dispatcher(kafka_bootstrap, topics, SETTINGS, SubscriptionsFile(subscriptions=subs),
                                      endpoints):
            # warm up: connections, consumer assignment; the hanging endpoint now holds a request open
            await asyncio.to_thread(produce, kafka_bootstrap, topics.matches, [match(story_id="warm-up")])
            await async_wait_until(lambda: all(r.accepted() for r in healthy.values()), 60, "warm-up delivered")
            await async_wait_until(lambda: hanging.requests and len(failing.requests) >= 3, 30,
                                   "the hanging and failing endpoints are busy")
            stories = [match(story_id=f"story-{i}", article_id=f"a{i}") for i in range(STORIES)]
            sent = await asyncio.to_thread(produce, kafka_bootstrap, topics.matches, stories)
            sent_at = {f"story-{i}": at for i, at in enumerate(sent)}
            await async_wait_until(lambda: all(len(r.accepted()) == STORIES + 1 for r in healthy.values()), 60,
                                   "every healthy endpoint got every story")
        latencies = [request.at - sent_at[request.json()["story_id"]]
                     for receiver in healthy.values() for request in receiver.accepted()
                     if request.json()["story_id"] != "warm-up"]
        assert len(latencies) == HEALTHY * STORIES
        print(f"\ndelivery latency over {len(latencies)} deliveries: p50 {sorted(latencies)[len(latencies) // 2]:.3f} s,"
              f" p99 {p99(latencies):.3f} s, max {max(latencies):.3f} s")
        assert p99(latencies) < 1.0
        assert len(hanging.requests) == 1, "the hanging endpoint's queue waits behind its own open request"
        assert len(failing.requests) > 3, "the failing endpoint kept being retried meanwhile"
    finally:
        for receiver in (*healthy.values(), hanging, failing):
            receiver.close()
