"""`newswatch process` as a real subprocess on the real broker: matches, stories, dead letters,
crash recovery, live watchlist edits and clean shutdown."""

from __future__ import annotations

import json
import shutil
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from kafka import KafkaProducer

from newswatch.broker.local import free_port
from newswatch.kafka_settings import Topics
from newswatch.schemas import DeadLetter, Match, decode
from processors.detection import load_watchlists
from tests.processors.corpus import labelled_articles, seed_article
from tests.processors.factories import article
from tests.processors.test_stories import EDITS, SAME_TOPIC_OTHER_STORY
from tests.processors.worker_support import (ROOT, WorkerProcess, article_records, matches_by_id, produce,
                                             read_all, wait_until_consuming, write_config)
from tests.support.kafka import create_topics, group_lag, read_records
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

SEED_WATCHLISTS = ROOT / "seeds" / "watchlists"


@pytest.fixture
def worker_factory(tmp_path, kafka_bootstrap):
    """Starts workers for a test and makes sure each one is stopped (and exited 0) at the end."""
    started: list[WorkerProcess] = []

    def start(config: Path, metrics_port: int = 0) -> WorkerProcess:
        worker = WorkerProcess(config, kafka_bootstrap, tmp_path / f"worker-{len(started)}.log", metrics_port)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.proc.poll() is None:
            code = worker.stop()
            assert code == 0, f"worker exited {code} on SIGTERM:\n{worker.log()}"


def test_thousand_labelled_articles_and_the_seed_give_exactly_the_expected_matches(
        tmp_path, kafka_bootstrap, topic_prefix, worker_factory):
    topics = Topics(topic_prefix)
    corpus = labelled_articles(1000, id_prefix="t1k")
    seed = seed_article()
    expected = {item.article.id: item.topics for item in corpus if item.topics}
    expected[seed.id] = ("air_defense_system", "arms_deal", "ministerial_visit")
    assert {"ar", "en", "ru"} == {item.article.lang for item in corpus}
    create_topics(kafka_bootstrap, topics.articles)
    produce(kafka_bootstrap, topics.articles, article_records([item.article for item in corpus] + [seed]))

    port = free_port()
    worker = worker_factory(write_config(tmp_path, topic_prefix, SEED_WATCHLISTS), metrics_port=port)
    records = read_records(kafka_bootstrap, topics.matches, min_count=len(expected), timeout=120, settle=2)

    grouped = matches_by_id(records)
    assert len(records) == len(expected), "one match per article with topics, nothing more"
    got = {article_id: tuple(h.topic for h in decode(recs[0].value, Match).topics)
           for article_id, recs in grouped.items()}
    assert got == expected
    version = load_watchlists(SEED_WATCHLISTS).version
    assert {decode(r.value, Match).watchlist_version for r in records} == {version}

    seed_match = decode(grouped[seed.id][0].value, Match)
    assert [h.topic for h in seed_match.topics] == ["air_defense_system", "arms_deal", "ministerial_visit"]
    assert all(h.evidence for h in seed_match.topics)
    assert [s.article_id for s in seed_match.sources] == [seed.id]

    per_topic = Counter(t for topics_ in expected.values() for t in topics_)

    def metrics_caught_up():
        values = worker.metrics()
        return values.get(("newswatch_processor_articles_total", (("outcome", "no_topics"),))) == 1001 - len(expected) \
            and values.get(("newswatch_processor_candidates_total", (("outcome", "matched"),))) == len(expected) \
            and values

    values = wait_until(metrics_caught_up, 30, "metrics count every article and every match")
    assert values[("newswatch_processor_articles_total", (("outcome", "candidate"),))] == len(expected)
    for topic, count in per_topic.items():
        assert values[("newswatch_processor_matches_total", (("topic", topic),))] == count
    assert values[("newswatch_processor_consumer_lag", (("partition", "0"),))] == 0
    assert values[("newswatch_processor_watchlist_info", (("version", version),))] == 1
    assert "processor_starting" in worker.log()


def test_one_story_across_five_feeds_and_another_for_an_unrelated_article(
        tmp_path, kafka_bootstrap, topic_prefix, worker_factory):
    topics = Topics(topic_prefix)
    feeds = [article(f"wire-{n}", *EDITS[n], source=f"Feed {n}", feed=f"https://feed{n}.example.test/rss")
             for n in range(5)]
    other = article("other-story", *SAME_TOPIC_OTHER_STORY, source="Feed 9")
    create_topics(kafka_bootstrap, topics.articles)
    produce(kafka_bootstrap, topics.articles, article_records(feeds + [other]))
    worker_factory(write_config(tmp_path, topic_prefix, SEED_WATCHLISTS))

    records = read_records(kafka_bootstrap, topics.matches, min_count=6, timeout=90, settle=1)
    matches = {m.id: m for m in (decode(r.value, Match) for r in records)}
    assert len(records) == 6
    story_ids = {matches[f"wire-{n}"].story_id for n in range(5)}
    assert len(story_ids) == 1
    assert matches["other-story"].story_id not in story_ids
    assert [s.source for s in matches["wire-4"].sources] == [f"Feed {n}" for n in range(5)]
    assert [s.feed_url for s in matches["wire-0"].sources] == ["https://feed0.example.test/rss"]


def test_garbage_and_v99_records_go_to_the_dlq_and_processing_continues(
        tmp_path, kafka_bootstrap, topic_prefix, worker_factory):
    topics = Topics(topic_prefix)
    before, after = seed_article("before"), seed_article("after")
    v99 = json.loads(seed_article("future").encode())
    v99["schema"] = "newswatch.article/v99"
    create_topics(kafka_bootstrap, topics.articles)
    produce(kafka_bootstrap, topics.articles, [
        (b"before", before.encode()),
        (b"garbage", b"\x00\x9f<html>not an article"),
        (b"future", json.dumps(v99).encode()),
        (b"after", after.encode()),
    ])
    worker_factory(write_config(tmp_path, topic_prefix, SEED_WATCHLISTS))

    dead = read_records(kafka_bootstrap, topics.articles_dlq, min_count=2, timeout=90, settle=1)
    letters = {r.key: decode(r.value, DeadLetter) for r in dead}
    assert len(dead) == 2 and set(letters) == {b"garbage", b"future"}
    assert letters[b"garbage"].error.startswith("not JSON")
    assert letters[b"garbage"].value_base64 and letters[b"garbage"].offset == 1
    assert "unsupported schema version 'newswatch.article/v99'" in letters[b"future"].error
    assert json.loads(letters[b"future"].value)["schema"] == "newswatch.article/v99"
    assert {l.stage for l in letters.values()} == {"processors"}
    assert {l.topic for l in letters.values()} == {topics.articles}

    matches = read_records(kafka_bootstrap, topics.matches, min_count=2, timeout=30, settle=1)
    assert sorted(decode(r.value, Match).id for r in matches) == ["after", "before"]


@pytest.mark.parametrize("beside", [{}, {"detection_process": True, "detection_processes": 2}],
                         ids=["detection-in-the-loop", "detection-in-two-children"])
def test_sigkill_mid_stream_then_restart_loses_nothing_and_duplicates_are_identical(
        tmp_path, kafka_bootstrap, topic_prefix, worker_factory, beside):
    topics = Topics(topic_prefix)
    corpus = labelled_articles(5000, id_prefix="crash", seed=21)
    warm_up = seed_article("crash-warm-up")
    expected = {item.article.id: item.topics for item in corpus if item.topics}
    expected[warm_up.id] = ("air_defense_system", "arms_deal", "ministerial_visit")
    create_topics(kafka_bootstrap, topics.articles)
    config = write_config(tmp_path, topic_prefix, SEED_WATCHLISTS, batch_size=200, **beside)

    first = worker_factory(config)
    produce(kafka_bootstrap, topics.articles, article_records([warm_up]))
    read_records(kafka_bootstrap, topics.matches, min_count=1, timeout=90)
    # The articles then arrive over about five seconds, so the kill lands in the middle of them.
    records = article_records(item.article for item in corpus)
    producer = threading.Thread(target=produce, args=(kafka_bootstrap, topics.articles, paced(records, 1000)))
    producer.start()
    wait_until(lambda: len(read_all(kafka_bootstrap, topics.matches)) >= 300, 60, "the first worker got going")
    first.kill()
    killed_at = len(read_all(kafka_bootstrap, topics.matches))
    producer.join(timeout=60)
    assert killed_at < len(expected), "the kill was meant to land mid-stream"

    second = worker_factory(config)

    def lag() -> dict:
        return group_lag(kafka_bootstrap, f"{topic_prefix}processor", [topics.articles, topics.candidates])
    # Replayed duplicates count as records, so the end is every expected id seen and no candidate
    # left unread by the story stage (then any extra match is there too), not a record count. The
    # articles' own lag is not waited on: once, in a loaded suite, a restarted worker with detection
    # in children detected everything but committed no articles offset for 240 s (a faust commit
    # stall; the cost is a longer replay after the next restart, not a loss).
    try:
        wait_until(lambda: set(expected) <= set(matches_by_id(read_all(kafka_bootstrap, topics.matches))), 240,
                   "every expected match after the restart")
        wait_until(lambda: not any(n for tp, n in lag().items() if tp.topic == topics.candidates), 240,
                   "the restarted worker's story stage has read every candidate")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; lag {lag()}\n--- restarted worker:\n{second.log()[-4000:]}") from None
    out = read_all(kafka_bootstrap, topics.matches)
    grouped = matches_by_id(out)
    assert set(grouped) == set(expected), "every expected match is present, and no other"
    print(f"killed after {killed_at} matches; {len(out) - len(grouped)} replayed duplicates")
    for article_id, copies in grouped.items():
        assert tuple(h.topic for h in decode(copies[0].value, Match).topics) == expected[article_id]
        assert len({(c.key, c.value) for c in copies}) == 1, f"replayed copies of {article_id} differ"


def paced(records, per_second):
    """Yield records at about `per_second` (so a test can act while they are still arriving)."""
    started = time.monotonic()
    for n, record in enumerate(records):
        ahead = n / per_second - (time.monotonic() - started)
        if ahead > 0:
            time.sleep(ahead)
        yield record


def test_editing_a_watchlist_changes_matches_within_seconds_without_restart(
        tmp_path, kafka_bootstrap, topic_prefix, worker_factory):
    topics = Topics(topic_prefix)
    watchlists = tmp_path / "watchlists"
    shutil.copytree(SEED_WATCHLISTS, watchlists)
    old_version = load_watchlists(watchlists).version
    create_topics(kafka_bootstrap, topics.articles)
    worker = worker_factory(write_config(tmp_path, topic_prefix, watchlists, reload_interval="300ms"))

    def probe(article_id: str, title: str) -> None:
        produce(kafka_bootstrap, topics.articles, article_records([article(article_id, title, lang="en")]))

    def match_for(article_id: str) -> Match | None:
        for record in read_all(kafka_bootstrap, topics.matches):
            match = decode(record.value, Match)
            if match.id == article_id:
                return match
        return None

    # Before the edit an unknown system name raises nothing; the S-400 marker after each probe
    # shows the worker has read past it (one partition, so order is kept).
    probe("zephyr-before", "Army tests the Zephyr-9 interceptor near the coast")
    probe("marker-before", "Army tests the S-400 near the coast")
    wait_until(lambda: match_for("marker-before"), 90, "the worker matched the marker")
    assert match_for("zephyr-before") is None

    pack = watchlists / "air_defense_system.yaml"
    pack.write_text(pack.read_text(encoding="utf-8").replace("any: [S-75,", "any: [Zephyr-9, S-75,", 1),
                    encoding="utf-8")
    new_version = load_watchlists(watchlists).version
    assert new_version != old_version
    edited_at = time.monotonic()
    found, attempt = None, 0
    while found is None and time.monotonic() - edited_at < 20:
        probe(f"zephyr-after-{attempt}", "Army tests the Zephyr-9 interceptor near the coast")
        probe(f"marker-after-{attempt}", "Army tests the S-400 near the coast")
        wait_until(lambda: match_for(f"marker-after-{attempt}"), 30, "the worker matched the marker")
        found = match_for(f"zephyr-after-{attempt}")
        attempt += 1
    assert found is not None, "the edited watchlist did not take effect within 20 s"
    took = time.monotonic() - edited_at
    assert took < 10, f"the edit took {took:.1f} s to take effect"
    assert found.watchlist_version == new_version
    assert [h.topic for h in found.topics] == ["air_defense_system"]
    assert "watchlists_reloaded" in worker.log()

    # A broken edit keeps the last good rules running, and the log says why.
    pack.write_text("topics:\n  - id: broken\n    severity: [\n", encoding="utf-8")
    wait_until(lambda: "watchlists_reload_failed" in worker.log(), 15, "the failed reload was logged")
    probe("marker-after-broken", "Army tests the S-400 near the coast")
    kept = wait_until(lambda: match_for("marker-after-broken"), 30, "still matching after a broken edit")
    assert kept.watchlist_version == new_version
    assert "air_defense_system.yaml" in worker.log().split("watchlists_reload_failed", 1)[1]


def test_worker_exits_cleanly_on_sigint_and_sighup_forces_a_reload(
        tmp_path, kafka_bootstrap, topic_prefix, worker_factory):
    topics = Topics(topic_prefix)
    create_topics(kafka_bootstrap, topics.articles)
    produce(kafka_bootstrap, topics.articles, article_records([seed_article()]))
    worker = worker_factory(write_config(tmp_path, topic_prefix, SEED_WATCHLISTS))
    # Ready first (as long as a loaded machine needs), then the match: only the work is timed.
    wait_until_consuming(worker, kafka_bootstrap, f"{topic_prefix}processor")
    read_records(kafka_bootstrap, topics.matches, min_count=1, timeout=120)
    worker.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "watchlists_reload_requested" in worker.log(), 15, "SIGHUP was handled")
    assert worker.proc.poll() is None, "SIGHUP must not stop the worker"
    assert worker.stop(signal.SIGINT) == 0
    assert "processor_stopped" in worker.log()


def test_expired_dedup_entries_and_stories_are_deleted_from_the_changelog_and_stay_deleted_after_restart(
        tmp_path, kafka_bootstrap, topic_prefix, worker_factory):
    topics = Topics(topic_prefix)
    create_topics(kafka_bootstrap, topics.articles)
    config = write_config(tmp_path, topic_prefix, SEED_WATCHLISTS, dedup_retention="1s", story_window="1s")
    first = worker_factory(config)
    # "early" entered Kafka ten seconds before "later" (record timestamps), so once "later" has moved
    # stream time on, "early" is past the 1 s retention and its story past the 1 s window.
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    early = article("early", *EDITS[0])
    producer.send(topics.articles, key=b"early", value=early.encode(), timestamp_ms=int(time.time() * 1000) - 10_000)
    producer.flush()
    producer.close()
    read_records(kafka_bootstrap, topics.matches, min_count=1, timeout=180)  # a loaded machine's start-up
    produce(kafka_bootstrap, topics.articles, article_records([article("later", *SAME_TOPIC_OTHER_STORY)]))
    read_records(kafka_bootstrap, topics.matches, min_count=2, timeout=30)
    assert first.stop() == 0

    changelog = read_all(kafka_bootstrap, f"{topic_prefix}processor-processed-changelog")
    assert [(json.loads(r.key), r.value) for r in changelog if r.value is None] == [("early", None)]
    stories = read_all(kafka_bootstrap, f"{topic_prefix}processor-stories-changelog")
    assert any(r.value is None for r in stories), "the closed story was deleted"

    # After a restart the forgotten article id is matched again: its entry was really deleted.
    second = worker_factory(config)
    produce(kafka_bootstrap, topics.articles, article_records([article("early", *EDITS[0])]))
    out = read_records(kafka_bootstrap, topics.matches, min_count=3, timeout=180, settle=1)
    contents = {article_id: {r.value for r in recs} for article_id, recs in matches_by_id(out).items()}
    # Two different matches for "early" (first publication, and the one after it was forgotten);
    # any other copy is an at-least-once replay with the same bytes.
    assert {article_id: len(values) for article_id, values in contents.items()} == {"early": 2, "later": 1}
    assert "Traceback" not in second.log()


def test_three_partitions_one_worker_groups_stories_across_partitions(
        tmp_path, kafka_bootstrap, topic_prefix, worker_factory):
    topics = Topics(topic_prefix)
    create_topics(kafka_bootstrap, topics.articles, partitions=3)
    corpus = labelled_articles(300, id_prefix="p3", seed=9)
    feeds = [article(f"wire-{n}", *EDITS[n], source=f"Feed {n}") for n in range(5)]
    expected = {item.article.id: item.topics for item in corpus if item.topics}
    produce(kafka_bootstrap, topics.articles, article_records([item.article for item in corpus] + feeds))
    worker = worker_factory(write_config(tmp_path, topic_prefix, SEED_WATCHLISTS))

    out = read_records(kafka_bootstrap, topics.matches, min_count=len(expected) + 5, timeout=120, settle=2)
    grouped = matches_by_id(out)
    assert len(out) == len(expected) + 5
    wire = [decode(grouped[f"wire-{n}"][0].value, Match) for n in range(5)]
    assert {r.partition for r in read_all(kafka_bootstrap, topics.articles)} == {0, 1, 2}
    assert len({m.story_id for m in wire}) == 1
    assert {i: tuple(h.topic for h in decode(grouped[i][0].value, Match).topics) for i in expected} == expected
    assert "partitions=3" in worker.log()


def test_sigterm_with_the_broker_gone_still_exits_within_the_stop_timeout(tmp_path, topic_prefix):
    from newswatch.broker.local import LocalBroker

    broker = LocalBroker(data_dir=tmp_path / "kafka", port=free_port(), controller_port=free_port(), heap_mb=256)
    bootstrap = broker.start(timeout=180)[0].bootstrap
    try:
        topics = Topics(topic_prefix)
        create_topics(bootstrap, topics.articles)
        produce(bootstrap, topics.articles, article_records([seed_article()]))
        worker = WorkerProcess(write_config(tmp_path, topic_prefix, SEED_WATCHLISTS, stop_timeout="3s"),
                               bootstrap, tmp_path / "worker.log")
        read_records(bootstrap, topics.matches, min_count=1, timeout=90)
    finally:
        broker.stop(timeout=30)
    began = time.monotonic()
    assert worker.stop(signal.SIGTERM, timeout=30) == 0
    assert time.monotonic() - began < 15
    log = worker.log()
    assert "processor_stop_forced" in log or "processor_stopped" in log
