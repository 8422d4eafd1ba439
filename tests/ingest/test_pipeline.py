"""Feed server -> poller -> outbox -> the real Kafka broker: every entry once, re-polls and restarts
publish nothing, a new entry arrives on the next poll, unchanged feeds answer 304 and are not parsed."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from newswatch.kafka_settings import Topics
from newswatch.schemas import Article, decode

from ingest.feeds_config import FeedConfig
from ingest.metrics import IngestMetrics
from ingest.parse_pool import ParsePool
from ingest.publish import OutboxPublisher, kafka_connector
from ingest.seen import IngestStore
from tests.ingest.conftest import local_settings, make_poller
from tests.ingest.feeds_fixture import AR, EN, RU, atom, entries, rss1, rss2
from tests.support.kafka import read_records
from tests.support.waiting import async_wait_until

pytestmark = pytest.mark.integration


class CountingParser:
    """The real worker-process parser, counting the documents it is handed."""

    def __init__(self, inner: ParsePool):
        self.inner = inner
        self.calls = Counter()

    async def parse(self, content, base_url, **kwargs):
        self.calls[kwargs["feed_url"]] += 1
        return await self.inner.parse(content, base_url, **kwargs)


@pytest.fixture(scope="module")
def parse_pool():
    pool = ParsePool(workers=2, budget_s=20)
    yield pool
    pool.close()


def serve_feeds(server, en_items):
    ru_items = entries(RU, "http://ru.example.test/n", "tag:ru.example.test,2026:")
    server.serve_feed("/en.rss", rss2("English desk", "en", en_items))
    server.serve_feed("/ru.atom", atom("Лента", "ru", ru_items))
    server.serve_feed("/ar.rdf", rss1("أخبار", "ar", entries(AR, "http://ar.example.test/n", None)), etag=False)
    # A wire feed that re-carries two stories already in the feeds above (same link under its own
    # guid, and the same tag: guid) plus one story of its own; it sends no validators at all, so it
    # is downloaded and parsed on every poll.
    wire_items = [entries(EN, "http://news.example.test/en", "w")[0], ru_items[1],
                  *entries([("Wire: air defence drill", "<p>A drill was held.</p>")], "http://wire.test/n", "w",
                           start=7)]
    server.serve_feed("/wire.rss", rss2("Wire", "en", wire_items), etag=False, last_modified=None)
    return {"en": server.url("/en.rss"), "ru": server.url("/ru.atom"), "ar": server.url("/ar.rdf"),
            "wire": server.url("/wire.rss")}


class Stage:
    """One poller + publisher over a state folder, as `newswatch ingest` builds them."""

    def __init__(self, feeds, state_dir, bootstrap, topic, parser):
        self.store = IngestStore.in_dir(state_dir)
        self.settings = local_settings()
        self.metrics = IngestMetrics()
        self.publisher = OutboxPublisher(self.store, kafka_connector(bootstrap, topic), topic, self.metrics)
        self.poller = make_poller(feeds, self.store, self.settings, parser=parser, metrics=self.metrics,
                                  on_queued=self.publisher.wake)
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(self.publisher.run(self.stop))

    async def poll_and_publish(self):
        reports = await self.poller.poll_all()
        await async_wait_until(lambda: self.store.pending_count() == 0, 60, "outbox never drained")
        return {r.feed_url: r for r in reports}

    async def close(self):
        self.stop.set()
        await asyncio.wait_for(self.task, 30)
        await self.poller.client.aclose()
        self.store.close()


async def test_every_entry_once_across_repolls_restarts_and_feeds(feed_server, tmp_path, kafka_bootstrap,
                                                                  topic_prefix, parse_pool):
    topic = Topics(topic_prefix).articles
    en_items = entries(EN, "http://news.example.test/en", "en-")
    urls = serve_feeds(feed_server, en_items)
    feeds = [FeedConfig(url=url, name=name) for name, url in urls.items()]
    parser = CountingParser(parse_pool)

    stage = Stage(feeds, tmp_path, kafka_bootstrap, topic, parser)
    first = await stage.poll_and_publish()
    queued = {name: first[url].queued for name, url in urls.items()}
    # Feeds are polled concurrently, so a story the wire re-carries is queued by whichever feed is
    # parsed first; either way each of the 10 distinct stories is queued exactly once.
    assert sum(queued.values()) == 10 and queued["ar"] == 3, queued
    assert queued["en"] + queued["wire"] + queued["ru"] == 7 and queued["wire"] >= 1, queued
    records = read_records(kafka_bootstrap, topic, min_count=10, timeout=60, settle=2)
    articles = [decode(record.value, Article) for record in records]
    assert len(records) == 10 and len({a.id for a in articles}) == 10
    assert all(record.key.decode() == article.id for record, article in zip(records, articles))
    # The Russian story keeps "ru" even when the wire feed (declared "en") was parsed first.
    assert Counter(a.lang for a in articles) == {"en": 4, "ru": 3, "ar": 3}
    assert {a.title for a in articles} >= {EN[0][0], RU[0][0], AR[0][0]}

    # Re-poll: the three feeds with validators answer 304 and are not parsed; the wire feed is
    # parsed again and yields nothing new.
    hits_before = len(feed_server.hits)
    second = await stage.poll_and_publish()
    assert {name: second[url].outcome for name, url in urls.items()} == {
        "en": "not_modified", "ru": "not_modified", "ar": "not_modified", "wire": "unchanged"}
    conditional = {hit.path: hit for hit in feed_server.hits[hits_before:]}
    assert conditional["/en.rss"].headers["If-None-Match"].startswith('"')
    assert conditional["/ar.rdf"].headers["If-Modified-Since"] == "Sat, 28 Nov 2026 09:00:00 GMT"
    assert {path: hit.status for path, hit in conditional.items()} == {
        "/en.rss": 304, "/ru.atom": 304, "/ar.rdf": 304, "/wire.rss": 200}
    assert parser.calls == {urls["en"]: 1, urls["ru"]: 1, urls["ar"]: 1, urls["wire"]: 2}
    await stage.close()

    # Restart: validators and the seen-state come back from the state file.
    stage = Stage(feeds, tmp_path, kafka_bootstrap, topic, parser)
    third = await stage.poll_and_publish()
    assert sum(report.queued for report in third.values()) == 0
    assert [third[urls[name]].outcome for name in ("en", "ru", "ar")] == ["not_modified"] * 3
    assert parser.calls[urls["en"]] == 1

    # A new entry arrives on the next poll, alone.
    en_items = [*en_items, *entries([("Late: minister lands in Moscow", "<p>Arrived at 10:00.</p>")],
                                    "http://news.example.test/en", "en-", start=3)]
    feed_server.serve_feed("/en.rss", rss2("English desk", "en", en_items))
    fourth = await stage.poll_and_publish()
    assert fourth[urls["en"]].queued == 1 and sum(r.queued for r in fourth.values()) == 1
    await stage.close()

    records = read_records(kafka_bootstrap, topic, min_count=11, timeout=60, settle=3)
    keys = [record.key.decode() for record in records]
    assert len(keys) == 11 and len(set(keys)) == 11
    assert set(keys) - {article.id for article in articles} == {"guid:127.0.0.1:en-3"}
