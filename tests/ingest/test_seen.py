from datetime import datetime, timedelta, timezone

from ingest.parse import parse_feed
from ingest.seen import FeedState, IngestStore
from tests.ingest.feeds_fixture import EN, RU, entries, rss2

NOW = datetime(2026, 11, 29, 1, 0, tzinfo=timezone.utc)


def parsed_entries(texts, link_base, guid_prefix, feed_url="http://a.test/feed"):
    return parse_feed(rss2("t", "en", entries(texts, link_base, guid_prefix)), feed_url, fetched_at=NOW).entries


def test_new_entries_are_queued_once_and_survive_a_reopen(tmp_path):
    store = IngestStore.in_dir(tmp_path)
    feed = FeedState("http://a.test/feed", etag='"1"')
    batch = parsed_entries(EN, "http://a.test/n", "tag:a,")
    assert len(store.record_poll(feed, batch, NOW)) == 3
    assert store.feed_state(feed.url).articles_total == 3
    feed = store.feed_state(feed.url)
    assert store.record_poll(feed, batch, NOW) == []  # a re-poll queues nothing
    store.close()

    reopened = IngestStore.in_dir(tmp_path)
    assert reopened.record_poll(feed, batch, NOW) == []  # nor after a restart
    assert [row.article_id for row in reopened.pending_after(0, 10)] == ["tag:a,0", "tag:a,1", "tag:a,2"]
    assert reopened.feed_state(feed.url).etag == '"1"' and reopened.feed_state(feed.url).articles_total == 3
    assert reopened.pending_count() == 3


def test_same_link_in_another_feed_is_a_duplicate(tmp_path):
    store = IngestStore.in_dir(tmp_path)
    first = parsed_entries(EN, "http://a.test/n", "tag:a,")
    # another feed carries the same stories under its own guids but the same links
    second = parsed_entries(EN, "http://a.test/n", "12", feed_url="http://b.test/feed")
    assert len(store.record_poll(FeedState("http://a.test/feed"), first, NOW)) == 3
    assert store.record_poll(FeedState("http://b.test/feed"), second, NOW) == []
    other = parsed_entries(RU, "http://b.test/n", None, feed_url="http://b.test/feed")
    assert len(store.record_poll(FeedState("http://b.test/feed"), other, NOW)) == 3


def test_seen_advances_only_when_published(tmp_path):
    store = IngestStore.in_dir(tmp_path)
    store.record_poll(FeedState("http://a.test/feed"), parsed_entries(EN, "http://a.test/n", "tag:a,"), NOW)
    assert store.pending_count() == 3 and store.published_count() == 0
    store.mark_published(["tag:a,0", "tag:a,2"])
    assert store.published_count() == 2
    assert [row.article_id for row in store.pending_after(0, 10)] == ["tag:a,1"]
    first_seq = store.pending_after(0, 10)[0].seq
    assert store.pending_after(first_seq, 10) == []


def test_prune_forgets_only_old_published_keys(tmp_path):
    store = IngestStore.in_dir(tmp_path)
    feed = FeedState("http://a.test/feed")
    batch = parsed_entries(EN, "http://a.test/n", "tag:a,")
    store.record_poll(feed, batch, NOW - timedelta(days=200))
    store.mark_published(["tag:a,0", "tag:a,1"])
    store.record_poll(feed, batch[1:2], NOW - timedelta(days=1))  # entry 1 sighted again recently
    assert store.prune(NOW, retention_days=180) == 2  # entry 0's id and link keys; 2 is still pending
    assert [e.article.id for e in store.unseen(batch)] == ["tag:a,0"]
