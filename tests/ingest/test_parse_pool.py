from datetime import datetime, timezone

import pytest

from ingest.parse import FeedRefused
from ingest.parse_pool import ParsePool
from tests.ingest.feeds_fixture import EN, entries, rss2

NOW = datetime(2026, 11, 29, 1, 0, tzinfo=timezone.utc)


async def test_parse_runs_in_a_worker_and_an_overrun_is_cut_and_the_pool_recovers():
    small = rss2("x", "en", entries(EN, "http://a.test/n", "a"))
    many = [(f"Entry {n} about S-400 deliveries", "<p>" + "text " * 200 + "</p>") for n in range(6000)]
    huge = rss2("big", "en", entries(many, "http://a.test/big", "b"))  # seconds of feedparser work
    pool = ParsePool(workers=1, budget_s=0.5)
    try:
        parsed = await pool.parse(small, "http://a.test/feed", fetched_at=NOW)
        assert len(parsed.articles) == 3
        with pytest.raises(FeedRefused) as caught:
            await pool.parse(huge, "http://a.test/big", fetched_at=NOW)
        assert caught.value.reason == "parse_timeout" and pool.restarts == 1
        again = await pool.parse(small, "http://a.test/feed", fetched_at=NOW)  # a fresh worker answers
        assert [a.id for a in again.articles] == [a.id for a in parsed.articles]
    finally:
        pool.close()


async def test_refusals_cross_the_process_boundary_with_their_reason():
    pool = ParsePool(workers=1, budget_s=10)
    try:
        with pytest.raises(FeedRefused) as caught:
            await pool.parse(b"<!DOCTYPE x [<!ENTITY a 'b'>]><rss/>", "http://a.test/", fetched_at=NOW)
        assert caught.value.reason == "entity_declaration"
    finally:
        pool.close()
