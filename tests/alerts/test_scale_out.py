"""Several `newswatch alerts` processes as one consumer group on the real broker: each story reaches
each subscription once, whichever process routed or delivered it, and a process killed with a retry
pending hands it on to the next owner of its partition, which sends it under the same webhook-id."""

from __future__ import annotations

import signal
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook

from alerts.dispatcher import routed_topic
from alerts.records import subscription_partition
from newswatch.kafka_settings import Topics
from tests.alerts.factories import ARABIC_TITLE, ENGLISH_TITLE, RUSSIAN_TITLE, match
from tests.alerts.processes import SECRET, AlertsProcess, write_config
from tests.alerts.receivers import Receiver, produce
from tests.support.kafka import create_topics, group_lag, group_members
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

PARTITIONS = 3
TITLES = {"ar": ARABIC_TITLE, "en": ENGLISH_TITLE, "ru": RUSSIAN_TITLE}


def names_covering(prefix: str, count: int) -> list[str]:
    """`count` subscription names whose partitions cover every partition (so every process owns some)."""
    names = [f"{prefix}{i}" for i in range(count)]
    assert {subscription_partition(n, PARTITIONS) for n in names} == set(range(PARTITIONS)), names
    return names


def story_matches(first: int, count: int) -> list:
    """`count` stories, each published three times (another outlet and article id each time)."""
    out = []
    for i in range(first, first + count):
        lang = ("ar", "en", "ru")[i % 3]
        ids = [f"st-{i}-copy{n}" for n in range(3)]
        for n, article_id in enumerate(ids):
            out.append(match(story_id=f"st-{i}", article_id=article_id, source=f"Outlet {n}", lang=lang,
                             title=f"{TITLES[lang]} {i}", known_sources=tuple(ids[:n])))
    return out


def firsts(receiver: Receiver) -> Counter:
    """How many accepted alerts with reason `first` each story got."""
    return Counter(r.json()["story_id"] for r in receiver.accepted() if r.json().get("reason") == "first")


def stopped(pid: int) -> bool:
    """True once the process is stopped by a signal (state T in /proc)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("T", "t")


def wait_for_group(bootstrap: str, group: str, members: int, processes: list[AlertsProcess]) -> None:
    wait_until(lambda: all(p.alive() for p in processes) and group_members(bootstrap, group) == members, 120,
               f"{members} alerts processes never formed one stable group:\n" +
               "\n".join(p.log()[-2000:] for p in processes))


def wait_for_no_lag(bootstrap: str, group: str, topics: Topics) -> None:
    wait_until(lambda: not any(group_lag(bootstrap, group, [topics.matches, routed_topic(topics)]).values()),
               60, "the alerts group commits everything it read")


def test_three_processes_send_one_first_alert_per_story_and_subscription(kafka_bootstrap, topic_prefix,
                                                                         tmp_path: Path):
    topics = Topics(topic_prefix)
    group = f"{topic_prefix}alerts"
    create_topics(kafka_bootstrap, topics.matches, partitions=PARTITIONS)
    names = names_covering("desk-", 6)
    receivers = {name: Receiver() for name in names}
    # A grouping wait of a few seconds, so the rebalance tends to land while stories are still waiting.
    config = write_config(tmp_path, topic_prefix, {n: r.url for n, r in receivers.items()}, wait="3s")
    processes: list[AlertsProcess] = []
    try:
        processes.append(AlertsProcess(config, kafka_bootstrap, tmp_path / "alerts-0.log"))
        wait_for_group(kafka_bootstrap, group, 1, processes)
        # The first wave meets one process, which then hands partitions on to two more mid-delivery.
        produce(kafka_bootstrap, topics.matches, story_matches(0, 20))
        processes += [AlertsProcess(config, kafka_bootstrap, tmp_path / f"alerts-{i}.log") for i in (1, 2)]
        wait_for_group(kafka_bootstrap, group, 3, processes)
        produce(kafka_bootstrap, topics.matches, story_matches(20, 20))
        stories = {f"st-{i}" for i in range(40)}
        wait_until(lambda: all(set(firsts(r)) == stories for r in receivers.values()), 180,
                   "every subscription gets its first alert of every story")
        wait_for_no_lag(kafka_bootstrap, group, topics)
        assert [p.stop() for p in processes] == [0, 0, 0]  # nothing can arrive after this

        for name, receiver in receivers.items():
            assert firsts(receiver) == Counter({story: 1 for story in stories}), name
            for request in receiver.requests:
                Webhook(SECRET).verify(request.body, request.headers)
        ids = [r.headers["webhook-id"] for receiver in receivers.values() for r in receiver.requests]
        assert len(ids) == len(set(ids)), "no webhook-id twice"
        # The second wave met three owners, one routed partition each: all three delivered.
        assert all(p.delivered_ids() for p in processes), [len(p.delivered_ids()) for p in processes]
        delivered_by = [p.delivered_ids() for p in processes]
        assert sum(len(d) for d in delivered_by) == len(set().union(*delivered_by)) == len(ids)
    finally:
        for process in processes:
            process.ensure_dead()
        for receiver in receivers.values():
            receiver.close()


def test_sigkill_with_a_retry_pending_hands_it_to_the_next_owner_under_the_same_webhook_id(
        kafka_bootstrap, topic_prefix, tmp_path: Path):
    topics = Topics(topic_prefix)
    group = f"{topic_prefix}alerts"
    create_topics(kafka_bootstrap, topics.matches, partitions=PARTITIONS)
    names = names_covering("desk-", 6)
    failing = {"on": True}
    flaky = Receiver(lambda attempt: 500 if failing["on"] else 200)
    receivers = {name: Receiver() for name in names} | {"flaky": flaky}
    # Retries every second for long enough to outlast the kill and the group's session timeout.
    config = write_config(tmp_path, topic_prefix, {n: r.url for n, r in receivers.items()},
                          retry_schedule="[" + ", ".join(["1s"] * 300) + "]")
    processes = [AlertsProcess(config, kafka_bootstrap, tmp_path / f"alerts-{i}.log") for i in range(3)]
    restarted = None
    try:
        wait_for_group(kafka_bootstrap, group, 3, processes)
        produce(kafka_bootstrap, topics.matches, story_matches(0, 10))
        wave1 = {f"st-{i}" for i in range(10)}
        healthy = [receivers[n] for n in names]
        wait_until(lambda: all(set(firsts(r)) == wave1 for r in healthy), 120, "the healthy ones get wave 1")

        def retried_per_id():
            counts = Counter(r.headers["webhook-id"] for r in flaky.requests)
            return counts if len(counts) == 10 and min(counts.values()) >= 2 else None
        wait_until(retried_per_id, 120, "every flaky alert refused at least twice (a retry pending)")
        owner = next(p for p in processes if "alert_retry_scheduled subscription=flaky" in p.log())
        assert owner.kill() < 0
        killed_at, killed_wall = time.monotonic(), time.time()
        pending_at_kill = {r.headers["webhook-id"] for r in flaky.requests}
        failing["on"] = False
        survivors = [p for p in processes if p is not owner]
        produce(kafka_bootstrap, topics.matches, story_matches(10, 10))  # mid-run: the survivors route it
        stories = {f"st-{i}" for i in range(20)}
        wait_until(lambda: all(set(firsts(r)) == stories for r in receivers.values()), 180,
                   "every subscription gets every story after the kill")
        # The killed process comes back and takes its share again.
        restarted = AlertsProcess(config, kafka_bootstrap, tmp_path / "alerts-restarted.log")
        wait_for_group(kafka_bootstrap, group, 3, [*survivors, restarted])
        wait_for_no_lag(kafka_bootstrap, group, topics)
        assert [p.stop() for p in (*survivors, restarted)] == [0, 0, 0]

        for name, receiver in receivers.items():
            assert firsts(receiver) == Counter({story: 1 for story in stories}), name
        for receiver in healthy:
            ids = [r.headers["webhook-id"] for r in receiver.requests]
            assert len(ids) == len(set(ids)), "no webhook-id twice at a healthy receiver"
        bodies: dict[str, set[bytes]] = defaultdict(set)
        for request in flaky.requests:
            bodies[request.headers["webhook-id"]].add(request.body)
            Webhook(SECRET).verify(request.body, request.headers)
        assert all(len(b) == 1 for b in bodies.values()), "every attempt of one webhook-id carries the same body"
        # Each accepted once by an attempt made after the kill (webhook-timestamp: when the attempt was
        # signed); another acceptance may only be an attempt the killed process had on the wire.
        after = Counter(r.headers["webhook-id"] for r in flaky.accepted()
                        if int(r.headers["webhook-timestamp"]) > killed_wall + 1)
        assert set(after) == set(bodies) and set(after.values()) == {1}, "each accepted once after the kill"
        assert all(int(r.headers["webhook-timestamp"]) <= killed_wall + 1 for r in flaky.accepted()
                   if r.at <= killed_at or after[r.headers["webhook-id"]] > 1)
        # What was pending at the kill was delivered after it, by the process that took the partition over.
        assert all(any(r.at > killed_at for r in flaky.accepted() if r.headers["webhook-id"] == i)
                   for i in pending_at_kill)
        assert pending_at_kill <= set().union(*(p.delivered_ids() for p in survivors))
        assert not pending_at_kill & owner.delivered_ids()
    finally:
        for process in (*processes, restarted):
            if process is not None:
                process.ensure_dead()
        for receiver in receivers.values():
            receiver.close()



def test_an_owner_that_stalled_past_its_session_sends_nothing_its_successor_took_over(
        kafka_bootstrap, topic_prefix, tmp_path: Path):
    topics = Topics(topic_prefix)
    group = f"{topic_prefix}alerts"
    create_topics(kafka_bootstrap, topics.matches, partitions=PARTITIONS)
    failing = {"on": True}
    flaky = Receiver(lambda attempt: 500 if failing["on"] else 200)
    config = write_config(tmp_path, topic_prefix, {"flaky": flaky.url},
                          retry_schedule="[" + ", ".join(["1s"] * 300) + "]")
    processes = [AlertsProcess(config, kafka_bootstrap, tmp_path / f"alerts-{i}.log") for i in range(2)]
    try:
        wait_for_group(kafka_bootstrap, group, 2, processes)
        produce(kafka_bootstrap, topics.matches, story_matches(0, 5))
        wait_until(lambda: len({r.headers["webhook-id"] for r in flaky.requests}) == 5, 120,
                   "all five alerts refused once (retries pending)")
        owner = next(p for p in processes if "alert_retry_scheduled subscription=flaky" in p.log())
        successor = next(p for p in processes if p is not owner)
        owner.proc.send_signal(signal.SIGSTOP)  # frozen with its retries due: it cannot heartbeat
        try:
            wait_until(lambda: stopped(owner.proc.pid), 10, "the owner is frozen")
            frozen_wall = time.time()
            failing["on"] = False
            wait_until(lambda: len(successor.delivered_ids()) == 5, 120,
                       "the successor delivers the frozen owner's retries after its session timed out")
            accepted_before_resume = len(flaky.accepted())
        finally:
            resumed_at = time.monotonic()
            logged_before = len(owner.log())
            owner.proc.send_signal(signal.SIGCONT)
        # Woken up, it finds itself out of the group before it attempts anything: it rejoins, or, if it
        # had state to write (an attempt's outcome), it exits rather than write it, to be restarted.
        woke = lambda: owner.log()[logged_before:]
        wait_until(lambda: owner.proc.poll() is not None or "alerts_partitions_revoked" in woke(), 60,
                   "the woken owner notices it lost the group")
        live = [successor]
        if owner.proc.poll() is not None:
            assert owner.proc.returncode == 1 and "alerts_not_a_member" in woke(), owner.log()[-3000:]
            live.append(AlertsProcess(config, kafka_bootstrap, tmp_path / "alerts-restarted.log"))
            processes.append(live[-1])
        else:
            live.append(owner)
        wait_for_group(kafka_bootstrap, group, 2, live)
        wait_for_no_lag(kafka_bootstrap, group, topics)
        assert [p.stop() for p in live] == [0, 0]
        assert accepted_before_resume == 5
        # Nothing reached the endpoint once the owner woke up: its successor had sent everything, and
        # the woken owner sent nothing more.
        assert not [r for r in flaky.requests if r.at > resumed_at], "the stalled owner sent again"
        # Each accepted once from the successor; another acceptance can only be an attempt the owner
        # already had on the wire when it froze (signed before the freeze).
        late = Counter(r.headers["webhook-id"] for r in flaky.accepted()
                       if int(r.headers["webhook-timestamp"]) > frozen_wall + 1)
        assert len(late) == 5 and set(late.values()) == {1}
        assert not owner.delivered_ids() - {r.headers["webhook-id"] for r in flaky.accepted()
                                            if int(r.headers["webhook-timestamp"]) <= frozen_wall + 1}
    finally:
        for process in processes:
            if process.proc.poll() is None:
                process.proc.send_signal(signal.SIGCONT)
            process.ensure_dead()
        flaky.close()
