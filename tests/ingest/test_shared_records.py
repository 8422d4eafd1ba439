"""The pure parts of shared mode: where a host's records go, how the feeds file becomes the feeds
topic, and how a feed-state partition's records fold into what a new owner loads."""

from __future__ import annotations

from datetime import datetime, timezone

from kafka.partitioner.default import DefaultPartitioner

from ingest.feeds_config import FeedConfig
from ingest.seen import FeedState
from ingest.shared import (PartitionState, decode_feeds, encode_feeds, feed_state_record, host_of, outbox_record,
                           partition_for, seen_record, sync_plan)


class _Cluster:
    def __init__(self, partitions: int):
        self.partitions = set(range(partitions))

    def topics(self):
        return {"t"}

    def partitions_for_topic(self, topic):
        return self.partitions

    def available_partitions_for_topic(self, topic):
        return self.partitions


def test_a_host_goes_where_kafkas_default_partitioner_puts_the_host_key():
    for partitions in (1, 3, 12, 50):
        cluster = _Cluster(partitions)
        for host in ("127.0.0.1", "news.example.org", "вести.рф", "a"):
            key = host.encode("utf-8")
            assert partition_for(host, partitions) == DefaultPartitioner().partition("t", host, key, None, None, cluster)


def test_every_feed_of_a_host_is_in_one_record_and_the_encoding_is_canonical():
    feeds = [FeedConfig(url="https://b.example/x", lang="en", interval=120, tags=("wire",)),
             FeedConfig(url="https://A.example/2", name="A two"), FeedConfig(url="https://a.example/1")]
    records = encode_feeds(feeds)
    assert set(records) == {"a.example", "b.example"}
    assert [feed.url for feed in decode_feeds(records["a.example"])] == ["https://A.example/2", "https://a.example/1"]
    assert decode_feeds(records["b.example"]) == [feeds[0]]
    assert encode_feeds(list(reversed(feeds))) == records  # order in the file does not matter
    assert host_of("https://A.example/2") == "a.example" == feeds[1].host


def test_the_sync_plan_writes_changed_and_new_hosts_and_tombstones_removed_ones():
    current = {"same": b"1", "changed": b"2", "gone": b"3"}
    wanted = {"same": b"1", "changed": b"22", "new": b"4"}
    assert sync_plan(current, wanted) == {"changed": b"22", "new": b"4", "gone": None}
    assert sync_plan(wanted, wanted) == {}


def test_a_partition_folds_to_the_latest_state_and_tombstones_remove():
    at = datetime(2026, 12, 3, 12, 0, tzinfo=timezone.utc)
    state = FeedState("https://a.example/1", etag='"v1"', last_modified="Thu, 03 Dec 2026 11:00:00 GMT",
                      interval_s=300.0, next_poll_at=at, last_attempt_at=at, last_success_at=at,
                      last_outcome="new", consecutive_failures=0, articles_total=4)
    later = state.with_(etag='"v2"', last_outcome="not_modified", consecutive_failures=2, last_error="http_503")
    records = [
        feed_state_record(state),
        outbox_record("id-1", state.url, "{\"id\":\"id-1\",\"title\":\"Привет\"}".encode(), 1.5, ["k1", "k1b"]),
        seen_record("k1", "id-1", 1.5), seen_record("k1b", "id-1", 1.5),
        outbox_record("id-2", state.url, b"{}", 2.5, ["k2"]),
        ("o:id-1", None),  # acknowledged
        feed_state_record(later),
        seen_record("old", "id-0", 0.5), ("k:old", None),  # pruned
    ]
    folded = PartitionState()
    for key, value in records:
        folded.apply(key, value)
    assert folded.feeds == {state.url: later}
    assert folded.seen == {"k1": ("id-1", 1.5), "k1b": ("id-1", 1.5)}
    assert list(folded.pending) == ["id-2"]
    pending = folded.pending["id-2"]
    assert (pending.feed_url, pending.payload, pending.queued, pending.keys) == (state.url, b"{}", 2.5, ("k2",))
    roundtrip = PartitionState()
    roundtrip.apply(*outbox_record("id-1", state.url, "{\"title\":\"Привет\"}".encode(), 1.5, ["k1"]))
    assert roundtrip.pending["id-1"].payload == "{\"title\":\"Привет\"}".encode()
