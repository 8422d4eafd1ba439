"""Three `newswatch ingest` processes in shared mode on the real broker, 60 feeds on 6 local hosts:
each feed is polled by one poller at a time and never early, every entry is published once, and
when a poller is SIGKILLed its feeds move to the others with their validators and seen-ids (a
conditional GET answered 304, nothing published again), as they do when it comes back and when
one is stopped with SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition

from newswatch.schemas import Article, decode

from ingest.feeds_config import FeedConfig
from ingest.shared import sync_feeds

from tests.ingest.feed_server import FeedServer
from tests.ingest.feeds_fixture import AR, EN, RU, atom, entries, rss1, rss2
from tests.support.kafka import read_records
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
HOSTS = 6
FEEDS_PER_HOST = 10
INTERVAL = 4.0  # floor = ceiling = configured: every poll waits 3.6-4.4 s (schedule jitter)
MIN_GAP = INTERVAL * 0.9 - 0.2
POLLERS = 3
TEXTS = {"en": EN, "ru": RU, "ar": AR}
BUILDERS = {"en": rss2, "ru": atom, "ar": rss1}


class Desk:
    """The 60 feeds' contents: each feed a list of entries that the test adds to."""

    def __init__(self, servers: list[FeedServer]):
        self.servers = servers
        self.feeds: list[tuple[FeedServer, str, str]] = []  # (server, path, lang)
        self.items: dict[str, list] = {}
        for h, server in enumerate(servers):
            for f in range(FEEDS_PER_HOST):
                lang = ("en", "ru", "ar")[(h + f) % 3]
                path = f"/feed-{f}.xml"
                self.feeds.append((server, path, lang))
        for index in range(len(self.feeds)):
            self.add(index, 3)

    def url(self, index: int) -> str:
        server, path, _ = self.feeds[index]
        return server.url(path)

    def add(self, index: int, count: int = 1) -> None:
        server, path, lang = self.feeds[index]
        items = self.items.setdefault(self.url(index), [])
        texts = TEXTS[lang]
        fresh = [(f"{texts[(len(items) + i) % 3][0]} ({index}.{len(items) + i})", texts[(len(items) + i) % 3][1])
                 for i in range(count)]
        items.extend(entries(fresh, f"http://news{index}.example.test/{lang}", f"feed{index}-" if lang != "ar" else None,
                             start=len(items)))
        server.serve_feed(path, BUILDERS[lang](f"Desk {index}", lang, items))

    def expected_links(self) -> set[str]:
        return {item.link for items in self.items.values() for item in items}

    def hits(self, index: int):
        server, path, _ = self.feeds[index]
        return [hit for hit in server.hits_for(path) if hit.status is not None]


class Collector(threading.Thread):
    """Reads the articles topic from the start for as long as the test runs."""

    def __init__(self, bootstrap: str, topic: str):
        super().__init__(daemon=True)
        self.bootstrap, self.topic = bootstrap, topic
        self.records: list = []
        self.done = threading.Event()

    def run(self) -> None:
        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                                 auto_offset_reset="earliest")
        try:
            while not consumer.partitions_for_topic(self.topic) and not self.done.is_set():
                time.sleep(0.2)
            consumer.assign([TopicPartition(self.topic, p) for p in consumer.partitions_for_topic(self.topic)])
            consumer.seek_to_beginning()
            while not self.done.is_set():
                for records in consumer.poll(timeout_ms=200).values():
                    self.records.extend(records)
        finally:
            consumer.close()

    def links(self) -> Counter:
        return Counter(decode(record.value, Article).url for record in list(self.records))

    def keys(self) -> Counter:
        return Counter(record.key.decode() for record in list(self.records))


def write_config(folder: Path, name: str, bootstrap: str, prefix: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(
        f"kafka:\n  bootstrap_servers: {bootstrap}\n  topic_prefix: {prefix}\n  partitions: 3\n"
        f"feeds: feeds.yaml\n"
        f"ingest:\n  shared: true\n  allow_private_networks: true\n"
        f"  interval_floor_s: {INTERVAL}\n  interval_ceiling_s: {INTERVAL}\n"
        f"  user_agent: newswatch-test {name}\n  parse_workers: 1\n  extract_workers: 1\n"
        f"  feed_partitions: 12\n  session_timeout_s: 8\n  state_dir: state-{name}\n", encoding="utf-8")
    return path


def start_poller(config: Path, log_path: Path) -> subprocess.Popen:
    env = {key: value for key, value in os.environ.items() if key != "NEWSWATCH_KAFKA_BOOTSTRAP"}
    with open(log_path, "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "newswatch", "ingest", "--config", str(config),
                                 "--metrics-port", "0"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


def owner(hit) -> str:
    return hit.headers.get("User-Agent", "").rsplit(" ", 1)[-1]


def test_three_pollers_share_sixty_feeds_and_hand_over_a_killed_pollers_feeds(kafka_bootstrap, topic_prefix,
                                                                               tmp_path):
    servers = [FeedServer(f"127.0.0.{h + 1}") for h in range(HOSTS)]
    for server in servers:
        server.__enter__()
    processes: dict[str, subprocess.Popen] = {}
    collector = Collector(kafka_bootstrap, f"{topic_prefix}articles")
    try:
        desk = Desk(servers)
        feed_lines = ["feeds:"]
        for index in range(len(desk.feeds)):
            feed_lines += [f"  - url: {desk.url(index)}", f"    name: desk {index}", f"    lang: {desk.feeds[index][2]}",
                           f"    interval: {INTERVAL}", "    full_text: never"]
        (tmp_path / "feeds.yaml").write_text("\n".join(feed_lines) + "\n", encoding="utf-8")
        names = [f"p{n}" for n in range(1, POLLERS + 1)]
        configs = {name: write_config(tmp_path, name, kafka_bootstrap, topic_prefix) for name in names}
        logs = {name: tmp_path / f"{name}.log" for name in names}
        for name in names:
            processes[name] = start_poller(configs[name], logs[name])
        collector.start()
        everything = range(len(desk.feeds))

        def published_all() -> bool:
            return set(collector.links()) >= desk.expected_links()

        def diagnostics() -> str:
            return "\n".join(f"--- {name}\n" + logs[name].read_text(errors="replace")[-3000:] for name in names)

        # Phase 0: all three join, every feed is fetched, then answers 304 to the poller that holds it.
        try:
            wait_until(published_all, 180, "the first 180 entries were not all published")

            def steady() -> bool:
                for index in everything:
                    last = desk.hits(index)[-2:]
                    if len(last) < 2 or any(hit.status != 304 for hit in last) or owner(last[0]) != owner(last[1]):
                        return False
                return True
            wait_until(steady, 180, "the feeds never settled with one poller each answering 304")
        except AssertionError:
            raise AssertionError(diagnostics()) from None
        steady_from = time.monotonic()

        # Phase 1: new entries on half the feeds while the group is stable.
        for index in everything:
            if index % 2 == 0:
                desk.add(index)
        wait_until(published_all, 120, "phase 1 entries were not all published")
        wait_until(lambda: all(desk.hits(index)[-1].at > steady_from + INTERVAL for index in everything), 60,
                   "not every feed was polled after phase 1")
        owners = {}
        for index in everything:
            window = {owner(hit) for hit in desk.hits(index) if hit.at >= steady_from}
            assert len(window) == 1, f"feed {index} was polled by {window} while the group was stable"
            owners[index] = window.pop()
        by_host = defaultdict(set)
        for index, name in owners.items():
            by_host[desk.feeds[index][0].host].add(name)
        assert all(len(names) == 1 for names in by_host.values()), by_host  # the per-host limit holds
        counts = Counter(owners.values())
        victim = counts.most_common(1)[0][0]
        taken = [index for index, name in owners.items() if name == victim]

        # Phase 2: SIGKILL the poller with the most feeds; new entries on some of its feeds at once.
        processes[victim].send_signal(signal.SIGKILL)
        processes[victim].wait(30)
        killed_at = time.monotonic()
        changed = set(taken[::2])
        for index in changed:
            desk.add(index)
        unchanged = [index for index in taken if index not in changed]
        wait_until(published_all, 120, "entries added after the kill were not all published by the others")

        def taken_over() -> bool:
            return all(any(owner(hit) != victim and hit.at > killed_at for hit in desk.hits(index)) for index in taken)
        wait_until(taken_over, 120, "the killed poller's feeds were not taken over")
        for index in unchanged:  # the validators moved with the feed
            first = next(hit for hit in desk.hits(index) if owner(hit) != victim and hit.at > killed_at)
            assert first.headers.get("If-None-Match") or first.headers.get("If-Modified-Since"), (index, first.headers)
            assert first.status == 304, (index, first.status)

        # Phase 3: the killed poller comes back (a live hand-over), then new entries everywhere.
        before = logs[victim].stat().st_size
        processes[victim] = start_poller(configs[victim], logs[victim])
        back_at = time.monotonic()
        wait_until(lambda: "partitions_assigned" in logs[victim].read_text(errors="replace")[before:], 120,
                   "the restarted poller never joined the group")
        try:
            wait_until(lambda: all(desk.hits(index)[-1].at > back_at + 2 * INTERVAL for index in everything), 120,
                       "not every feed was polled after the restart")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{diagnostics()}") from None
        for index in everything:
            desk.add(index)
        wait_until(published_all, 120, "phase 3 entries were not all published")

        # Phase 4: a poller stopped with SIGTERM (a rolling restart) hands its feeds over at once,
        # without an early poll (the check below allows none here), new entries on them included.
        latest = {index: owner(desk.hits(index)[-1]) for index in everything}
        leaving = Counter(latest.values()).most_common(1)[0][0]
        handed = [index for index, name in latest.items() if name == leaving]
        processes[leaving].send_signal(signal.SIGTERM)
        assert processes[leaving].wait(90) == 0, diagnostics()
        left_at = time.monotonic()
        for index in handed[::2]:
            desk.add(index)
        wait_until(published_all, 120, "entries added after the SIGTERM were not all published")
        wait_until(lambda: all(any(hit.at > left_at for hit in desk.hits(index)) for index in handed), 120,
                   "the stopped poller's feeds were not taken over")
        # Two more intervals of polls to watch for anything published a second time.
        settle_until = time.monotonic() + 2 * INTERVAL
        wait_until(lambda: time.monotonic() > settle_until, 60, "settling")

        for name, process in processes.items():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for name, process in processes.items():
            assert process.wait(90) == 0, f"{name} exited with {process.returncode}:\n{diagnostics()}"

        # Every entry once (by link and by article id), and nothing else.
        links = collector.links()
        assert set(links) == desk.expected_links()
        assert [link for link, n in links.items() if n > 1] == []
        keys = collector.keys()
        assert [key for key, n in keys.items() if n > 1] == []
        assert len(keys) == len(desk.expected_links())

        # No feed polled twice within its interval, by one poller or by two. The one exception
        # allowed: the killed poller's last poll, whose new state it may not have got out.
        early = defaultdict(list)
        for index in everything:
            hits = desk.hits(index)
            for before, after in zip(hits, hits[1:]):
                if after.at - before.at >= MIN_GAP:
                    continue
                handover = owner(before) == victim and killed_at - INTERVAL * 1.2 <= before.at <= killed_at
                early["handover" if handover else "violation"].append(
                    (index, owner(before), owner(after), round(after.at - before.at, 2)))
        assert early["violation"] == [], f"feeds polled early: {early['violation']}\n{diagnostics()}"
        assert len(early["handover"]) <= len(taken)

        # `newswatch feeds` shows every feed's health, whichever poller had it.
        shown = subprocess.run([sys.executable, "-m", "newswatch", "feeds", "--config", str(configs["p1"])], cwd=REPO,
                               capture_output=True, text=True, timeout=120)
        assert shown.returncode == 0, shown.stderr
        rows = {line.split("  ")[0]: line.split()[2] for line in shown.stdout.splitlines() if line.startswith("desk ")}
        assert rows == {f"desk {index}": "ok" for index in everything}, shown.stdout
        assert "60 feed(s), 0 failing, 0 article(s) waiting for Kafka" in shown.stdout

        # ... and every feed's health is on <prefix>feed-health for the console, as in single mode.
        health = read_records(kafka_bootstrap, f"{topic_prefix}feed-health", min_count=60, timeout=60)
        newest = {json.loads(r.value)["name"]: json.loads(r.value)["consecutive_failures"] for r in health}
        assert newest == {f"desk {index}": 0 for index in everything}
    finally:
        collector.done.set()
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait(30)
        for server in servers:
            server.__exit__(None, None, None)


def test_a_feed_added_to_the_feeds_topic_is_polled_by_its_owner_which_keeps_the_others_schedule(
        kafka_bootstrap, topic_prefix, tmp_path):
    with FeedServer("127.0.0.7") as server:
        paths = ("/one.xml", "/two.xml", "/three.xml")
        for path in paths:
            server.serve_feed(path, rss2("Desk", "en", entries(EN, f"http://n.example.test{path}", f"{path}-")))
        feeds = [FeedConfig(url=server.url(path), interval=INTERVAL, full_text="never") for path in paths]
        (tmp_path / "feeds.yaml").write_text("feeds:\n" + "".join(
            f"  - url: {feed.url}\n    interval: {INTERVAL}\n    full_text: never\n" for feed in feeds[:2]),
            encoding="utf-8")
        log = tmp_path / "p1.log"
        process = start_poller(write_config(tmp_path, "p1", kafka_bootstrap, topic_prefix), log)
        try:
            wait_until(lambda: all(len(server.hits_for(p)) >= 2 for p in paths[:2]), 120,
                       "the poller never polled its feeds twice")
            assert server.hits_for("/three.xml") == []
            # What another poller started with a newer feeds file does first: write it to the topic.
            assert sync_feeds(kafka_bootstrap, f"{topic_prefix}feeds", feeds, 12) == 1
            wait_until(lambda: len(server.hits_for("/three.xml")) >= 2, 120, "the added feed was never polled")
            settle_until = time.monotonic() + 2 * INTERVAL
            wait_until(lambda: time.monotonic() > settle_until, 60, "settling")
            process.send_signal(signal.SIGTERM)
            assert process.wait(90) == 0
            assert "feeds=3" in log.read_text(errors="replace")  # the partition was taken on again
            for path in paths:
                hits = [hit for hit in server.hits_for(path) if hit.status is not None]
                gaps = [round(b.at - a.at, 2) for a, b in zip(hits, hits[1:])]
                assert all(gap >= MIN_GAP for gap in gaps), (path, gaps)  # the re-read kept the schedule
                assert all(hit.status == 304 for hit in hits[1:]), path  # and the validators
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(30)
