"""Detection in a child process gives the same records, byte for byte, as in the event loop,
and the child gets a new watchlist when its version changes."""

import asyncio
import shutil
from datetime import datetime, timezone

from processors.detect_pool import CHUNKS_PER_PROCESS, DetectionProcess, chunked, merged
from processors.detection import detect, load_watchlists
from processors.pipeline import DetectionStage, InboundRecord
from processors.stories import Sketcher
from tests.processors.corpus import labelled_articles
from tests.processors.worker_support import ROOT

NOW = datetime(2026, 2, 13, 10, 0, tzinfo=timezone.utc)


def test_the_child_detects_like_the_loop_and_follows_watchlist_versions(tmp_path):
    packs = load_watchlists(ROOT / "seeds" / "watchlists")
    records = [InboundRecord("t.articles", n % 3, n, 1_770_000_000_000 + n, item.article.id.encode(),
                             item.article.encode()) for n, item in enumerate(labelled_articles(120, seed=4))]
    records.append(InboundRecord("t.articles", 0, 999, 1_770_000_000_999, None, b"not json"))
    current = {"watchlist": packs}
    in_loop = DetectionStage(detect=detect, current_watchlist=lambda: current["watchlist"], sketcher=Sketcher())
    child = DetectionProcess(detect=detect, current_watchlist=lambda: current["watchlist"])
    try:
        first = asyncio.run(child.detect(records, NOW))
        expected = in_loop.process(records, NOW).encoded()
        assert first == expected
        assert first.outcomes["candidate"] > 10 and first.outcomes["dead_letter"] == 1

        one_pack = tmp_path / "packs"
        one_pack.mkdir()
        (one_pack / "ministerial_visit.yaml").write_bytes((ROOT / "seeds" / "watchlists" / "ministerial_visit.yaml").read_bytes())
        shutil.copytree(ROOT / "seeds" / "watchlists" / "gazetteer", one_pack / "gazetteer")  # its slots need it
        current["watchlist"] = load_watchlists(one_pack)
        second = asyncio.run(child.detect(records, NOW))
        assert second == in_loop.process(records, NOW).encoded()
        assert second.outcomes["candidate"] < first.outcomes["candidate"], "the new watchlist reached the child"
    finally:
        child.close()


def test_a_batch_cut_into_chunks_keeps_every_record_once_in_order():
    records = [InboundRecord("t.articles", 0, n, n, None, b"{}") for n in range(10)]
    for chunks in (1, 3, 4, 10, 25):
        pieces = chunked(records, chunks)
        assert [r for piece in pieces for r in piece] == records
        assert len(pieces) == min(chunks, len(records))
        assert max(map(len, pieces)) - min(map(len, pieces)) <= 1
    assert chunked([], 4) == []


def test_two_children_detect_like_the_loop_and_parts_come_in_the_batch_order():
    packs = load_watchlists(ROOT / "seeds" / "watchlists")
    records = [InboundRecord("t.articles", n % 3, n, 1_770_000_000_000 + n, item.article.id.encode(),
                             item.article.encode()) for n, item in enumerate(labelled_articles(200, seed=9))]
    in_loop = DetectionStage(detect=detect, current_watchlist=lambda: packs, sketcher=Sketcher())
    children = DetectionProcess(detect=detect, current_watchlist=lambda: packs, processes=2)

    async def parts():
        return [part async for part in children.parts(records, NOW)]

    try:
        first = asyncio.run(parts())
        assert len(first) == 2 * CHUNKS_PER_PROCESS
        assert merged(first) == in_loop.process(records, NOW).encoded()
        # Again, now that both children hold the watchlist: the same records.
        assert merged(asyncio.run(parts())) == merged(first)
    finally:
        children.close()
