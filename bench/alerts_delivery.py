"""Benchmark: alert delivery latency to healthy endpoints, alone and next to a hanging and a failing one.

    python bench/alerts_delivery.py [--endpoints 50] [--stories 20]

Uses NEWSWATCH_KAFKA_BOOTSTRAP when set, else starts a throwaway local broker. Prints p50/p99/max
of produce->receive latency for the baseline (all endpoints healthy) and the degraded run (plus one
endpoint that never answers and one that answers 500), and the degraded/baseline ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alerts.settings import AlertsSettings, GroupingSettings  # noqa: E402
from alerts.subscriptions import SubscriptionsFile  # noqa: E402
from newswatch.broker import local  # noqa: E402
from newswatch.kafka_settings import BOOTSTRAP_ENV, Topics  # noqa: E402
from tests.alerts.factories import match  # noqa: E402
from tests.alerts.receivers import Receiver, always, produce, running_dispatcher  # noqa: E402
from tests.alerts.test_dispatcher import wire  # noqa: E402
from tests.support.waiting import async_wait_until  # noqa: E402

SETTINGS = AlertsSettings(allow_private_networks=True, retry_schedule=(0.2,) * 50, retry_jitter=0.0,
                          grouping=GroupingSettings(wait=0, interval=60))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q * len(ordered))) - 1))]


async def scenario(bootstrap: str, endpoints: int, stories: int, degraded: bool) -> list[float]:
    topics = Topics(f"bench.{uuid.uuid4().hex[:8]}.")
    healthy = {f"h{i:03d}": Receiver() for i in range(endpoints)}
    extra = {"hanging": Receiver(lambda attempt: None), "failing": Receiver(always(500))} if degraded else {}
    subs, eps = wire({**healthy, **extra})
    try:
        async with running_dispatcher(bootstrap, topics, SETTINGS, SubscriptionsFile(subscriptions=subs), eps):
            await asyncio.to_thread(produce, bootstrap, topics.matches, [match(story_id="warm-up")])
            await async_wait_until(lambda: all(r.accepted() for r in healthy.values()), 120, "warm-up")
            batch = [match(story_id=f"s{i}", article_id=f"a{i}") for i in range(stories)]
            sent = await asyncio.to_thread(produce, bootstrap, topics.matches, batch)
            sent_at = {f"s{i}": at for i, at in enumerate(sent)}
            await async_wait_until(lambda: all(len(r.accepted()) == stories + 1 for r in healthy.values()), 120,
                                   "all delivered")
        return [req.at - sent_at[req.json()["story_id"]] for r in healthy.values() for req in r.accepted()
                if req.json()["story_id"] != "warm-up"]
    finally:
        for receiver in (*healthy.values(), *extra.values()):
            receiver.close()


def report(name: str, values: list[float]) -> tuple[float, float]:
    p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
    print(f"{name:<10} n={len(values):5d}  p50 {p50 * 1000:7.1f} ms  p99 {p99 * 1000:7.1f} ms  "
          f"max {max(values) * 1000:7.1f} ms")
    return p50, p99


async def main(bootstrap: str, endpoints: int, stories: int) -> None:
    base = report("baseline", await scenario(bootstrap, endpoints, stories, degraded=False))
    worse = report("degraded", await scenario(bootstrap, endpoints, stories, degraded=True))
    print(f"ratio degraded/baseline: p50 {worse[0] / base[0]:.2f}x  p99 {worse[1] / base[1]:.2f}x "
          f"(target: degraded p99 < 1000 ms)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoints", type=int, default=50)
    parser.add_argument("--stories", type=int, default=20)
    args = parser.parse_args()
    bootstrap = os.environ.get(BOOTSTRAP_ENV)
    broker = data = None
    if not bootstrap:
        data = Path(tempfile.mkdtemp(prefix="newswatch-bench-"))
        broker = local.LocalBroker(data_dir=data, port=local.free_port(), controller_port=local.free_port(),
                                   heap_mb=512)
        bootstrap = broker.start(timeout=180)[0].bootstrap
    try:
        asyncio.run(main(bootstrap, args.endpoints, args.stories))
    finally:
        if broker is not None:
            broker.stop(timeout=30)
            shutil.rmtree(data, ignore_errors=True)
