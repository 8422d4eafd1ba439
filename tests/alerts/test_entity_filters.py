"""Subscriptions that filter on entities, end to end on the real broker: the seed article goes
through a real `newswatch process` worker (detection with the gazetteer) onto the matches topic,
and the real dispatcher routes it: `countries: [EG]` receives it, `countries: [TR]` does not."""

from __future__ import annotations

import asyncio
import base64
from datetime import datetime, timezone

import pytest
from standardwebhooks.webhooks import Webhook

from alerts.settings import AlertsSettings, GroupingSettings
from alerts.subscriptions import Endpoint, Subscription, SubscriptionsFile
from newswatch.kafka_settings import Topics
from newswatch.secrets import Secret
from tests.alerts.receivers import Receiver, running_dispatcher
from tests.alerts.test_dispatcher import _decisions
from tests.processors.corpus import seed_article
from tests.processors.worker_support import ROOT, WorkerProcess, article_records, produce, write_config
from tests.support.kafka import create_topics, read_records
from tests.support.waiting import async_wait_until

pytestmark = pytest.mark.integration

SECRET = "whsec_" + base64.b64encode(b"entity-filter-test-key").decode()
FAST = AlertsSettings(allow_private_networks=True, retry_schedule=(0.3,), retry_jitter=0.0,
                      grouping=GroupingSettings(wait=0, interval=60))
PUBLISHED = datetime(2014, 2, 12, 9, 30, tzinfo=timezone.utc)  # as in seeds/demo-feeds/rt-arabic.xml


async def test_countries_eg_receives_the_seed_alert_and_countries_tr_does_not(tmp_path, kafka_bootstrap, topic_prefix):
    topics = Topics(topic_prefix)
    seed = seed_article().model_copy(update={"published_at": PUBLISHED})
    await asyncio.to_thread(create_topics, kafka_bootstrap, topics.articles, topics.matches)
    await asyncio.to_thread(produce, kafka_bootstrap, topics.articles, article_records([seed]))
    worker = WorkerProcess(write_config(tmp_path, topic_prefix, ROOT / "seeds" / "watchlists"), kafka_bootstrap,
                           tmp_path / "worker.log")
    egypt, turkey = Receiver(), Receiver()
    subs = (Subscription(name="egypt-desk", url=egypt.url, secret_env="S", countries=("EG",)),
            Subscription(name="turkey-desk", url=turkey.url, secret_env="S", countries=("TR",)),
            Subscription(name="s400-and-ru-eg", url=egypt.url, secret_env="S", countries=("RU", "EG"),
                         countries_mode="all", systems=("S-400",), enabled=False))
    endpoints = {s.name: Endpoint(url=Secret(s.url), secret=Secret(SECRET, "S"), headers={}) for s in subs}
    try:
        await asyncio.to_thread(read_records, kafka_bootstrap, topics.matches, min_count=1, timeout=180)
        async with running_dispatcher(kafka_bootstrap, topics, FAST, SubscriptionsFile(subscriptions=subs),
                                      endpoints) as run:
            await async_wait_until(lambda: egypt.accepted(), 60, "the EG desk gets the seed alert")
            await async_wait_until(lambda: _decisions(run).get(("turkey-desk", "country_filtered")) == 1, 30,
                                   "the TR desk's verdict on the seed match")
        assert turkey.requests == []
        body = Webhook(SECRET).verify(egypt.requests[0].body, egypt.requests[0].headers)
        assert body["article"]["id"] == seed.id
        by_type = {}
        for entity in body["entities"]:
            by_type.setdefault(entity["type"], set()).add(entity["id"])
        assert {"EG", "RU"} <= by_type["country"] and {"S-300", "S-400"} <= by_type["system"]
        offices = {e["id"]: e.get("office") for e in body["entities"] if e["type"] == "person"}
        assert offices["abdel_fattah_el_sisi"] == "defence minister"  # in February 2014
    finally:
        egypt.close()
        turkey.close()
        assert worker.stop() == 0, worker.log()
