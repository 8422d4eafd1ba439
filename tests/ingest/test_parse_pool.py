import os
import signal
import subprocess
import sys
from datetime import datetime, timezone

import pytest

from ingest.parse import FeedRefused
from ingest.parse_pool import ParsePool
from tests.ingest.feeds_fixture import EN, entries, rss2
from tests.support.waiting import wait_until

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


POLLER = r"""
import asyncio, sys
from datetime import datetime, timezone
from ingest.parse_pool import ParsePool

async def main():
    pool = ParsePool(workers=2)
    await pool.parse(sys.argv[1].encode(), "https://example.test/", fetched_at=datetime.now(timezone.utc))
    print(" ".join(map(str, pool._executor._processes)), flush=True)
    await asyncio.sleep(600)

if __name__ == "__main__":
    asyncio.run(main())
"""


def test_workers_exit_when_their_poller_is_killed(tmp_path):
    # A poller killed with SIGKILL cannot stop its workers, whose parent is the forkserver: each
    # must notice and go, or every such kill leaves two ~300 MB processes behind for good.
    script = tmp_path / "poller.py"
    script.write_text(POLLER, encoding="utf-8")
    feed = '<rss version="2.0"><channel><title>t</title><item><title>a</title></item></channel></rss>'
    poller = subprocess.Popen([sys.executable, str(script), feed], stdout=subprocess.PIPE, text=True,
                              cwd=os.getcwd(), env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        workers = [int(pid) for pid in poller.stdout.readline().split()]
        assert len(workers) == 2, "the poller parsed its feed in two workers"
    finally:
        poller.send_signal(signal.SIGKILL)
        poller.wait()

    def gone(pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
                return handle.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
        except FileNotFoundError:
            return True
    wait_until(lambda: all(map(gone, workers)), timeout=30, message="the parse workers exit after their poller")
