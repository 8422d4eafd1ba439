"""A hanging and a failing endpoint do not hold up 20 healthy ones, judged against a baseline
measured in the same test (healthy endpoints only, same load, same broker).

Latency is end to end: from the test producing the Match to the receiver reading the POST. The
receivers run in their own process (tests/alerts/receiver_farm.py) so their CPU is not counted
against the dispatcher. Had the hanging endpoint held the others up, their deliveries would wait
for its request to time out (`timeout`, 15 s): the degraded run's p99 stays within half of that of
the baseline's, whatever the machine's speed. The speed goal itself (p99 under 1 s at 50 endpoints
x 10 stories a second) is measured by bench/alerts_delivery.py.
"""

import asyncio
import base64
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kafka import KafkaProducer

from alerts.settings import AlertsSettings, GroupingSettings
from alerts.subscriptions import Endpoint, Subscription, SubscriptionsFile
from newswatch.kafka_settings import Topics
from newswatch.secrets import Secret
from tests.alerts.factories import match
from tests.alerts.receivers import produce, running_dispatcher
from tests.support.waiting import async_wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
HEALTHY = 20
STORIES = 10
SECRET = "whsec_" + base64.b64encode(b"latency-test-key").decode()
SETTINGS = AlertsSettings(allow_private_networks=True, retry_schedule=(0.2,) * 50, retry_jitter=0.0,
                          grouping=GroupingSettings(wait=0, interval=60))


class Farm:
    """The receiver farm subprocess: ports now, request records when closed."""

    def __init__(self, healthy: int, degraded: bool):
        flags = ["--hanging", "--failing"] if degraded else []
        self.process = subprocess.Popen([sys.executable, "-m", "tests.alerts.receiver_farm", str(healthy), *flags],
                                        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.ports = json.loads(self.process.stdout.readline())

    def wiring(self):
        names = {f"healthy{i:02d}": port for i, port in enumerate(self.ports["healthy"])}
        names.update({name: self.ports[name] for name in ("hanging", "failing") if name in self.ports})
        subs = tuple(Subscription(name=name, url=f"http://127.0.0.1:{port}/hook", secret_env="S")
                     for name, port in names.items())
        endpoints = {name: Endpoint(url=Secret(f"http://127.0.0.1:{port}/hook"), secret=Secret(SECRET), headers={})
                     for name, port in names.items()}
        return subs, endpoints

    def close(self) -> list[dict]:
        out, _ = self.process.communicate("", timeout=30)
        return [json.loads(line) for line in out.splitlines() if line.strip()]


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.99 * len(ordered))) - 1)]


async def measure(bootstrap: str, topics: Topics, farm: Farm, stories: int,
                  spacing: float = 0.1, deadline: float = 180) -> tuple[list[float], list[dict]]:
    """Deliver a warm-up story, then a stream of `stories`; latency of every healthy delivery of the latter."""
    subs, endpoints = farm.wiring()
    healthy_ports = set(farm.ports["healthy"])
    async with running_dispatcher(bootstrap, topics, SETTINGS, SubscriptionsFile(subscriptions=subs), endpoints) as run:
        await asyncio.to_thread(produce, bootstrap, topics.matches, [match(story_id="warm-up")])
        await async_wait_until(lambda: run.dispatcher.metrics.deliveries.labels("healthy00", "delivered", "http_2xx")
                               ._value.get() >= 1 and not any(p.subscription.startswith("healthy")
                                                              for p in run.dispatcher.pending.values()),
                               deadline, "warm-up delivered everywhere")
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
        sent = []
        try:
            for i in range(stories):  # a steady stream: one story every `spacing` s, each to every subscription
                m = match(story_id=f"story-{i}", article_id=f"a{i}")
                sent.append(time.monotonic())
                await asyncio.to_thread(lambda: producer.send(topics.matches, key=m.story_id.encode(),
                                                              value=m.encode()).get(10))
                await asyncio.sleep(spacing)  # pacing the load, not waiting for a result
        finally:
            producer.close()
        expected = len(healthy_ports) * (stories + 1)
        delivered = lambda: sum(run.dispatcher.metrics.deliveries.labels(f"healthy{i:02d}", "delivered", "http_2xx")
                                ._value.get() for i in range(len(healthy_ports)))
        await async_wait_until(lambda: delivered() == expected, deadline, "every healthy endpoint got every story")
    records = farm.close()
    sent_at = {f"story-{i}": at for i, at in enumerate(sent)}
    latencies = [r["at"] - sent_at[r["story_id"]] for r in records
                 if r["port"] in healthy_ports and r["story_id"] in sent_at]
    return latencies, records


# What a delivery held up behind the hanging request would cost at least (half its timeout).
HOLD_UP = SETTINGS.timeout / 2


async def _run(bootstrap: str, topics: Topics, degraded: bool) -> tuple[list[float], list[dict], dict]:
    farm = Farm(HEALTHY, degraded=degraded)
    try:
        latencies, records = await measure(bootstrap, topics, farm, STORIES)
    finally:
        if farm.process.poll() is None:
            farm.process.kill()
    return latencies, records, farm.ports


async def test_a_hanging_and_a_failing_endpoint_do_not_hold_up_the_others(kafka_bootstrap, topic_prefix):
    baseline, _, _ = await _run(kafka_bootstrap, Topics(f"{topic_prefix}base."), degraded=False)
    degraded, records, ports = await _run(kafka_bootstrap, Topics(f"{topic_prefix}degraded."), degraded=True)
    assert len(baseline) == len(degraded) == HEALTHY * STORIES
    print(f"\ndelivery latency p99: baseline {p99(baseline):.3f} s, with a hanging and a failing endpoint "
          f"{p99(degraded):.3f} s ({len(degraded)} deliveries each)")
    assert p99(degraded) < p99(baseline) + HOLD_UP, "the healthy endpoints waited behind the hanging one"
    by_port = lambda port: [r for r in records if r["port"] == port]
    assert len(by_port(ports["hanging"])) == 1, "the hanging endpoint's queue waits behind its open request"
    assert len(by_port(ports["failing"])) > 3, "the failing endpoint kept being retried meanwhile"
