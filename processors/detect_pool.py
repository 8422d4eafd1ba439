"""Detection beside the worker's event loop: child processes decode, detect, sketch and encode each
batch of articles, while faust's loop consumes, produces and runs the story stage. Detection is the
bulk of the CPU per article and needs no state, so it is the part that can leave the loop.

A batch is cut into chunks (a few per child) that the children work on at once; the worker sends
each chunk's candidates as soon as that chunk is back, in the batch's order, while the children
carry on with the next chunks. Output order, and so every byte downstream, is the same as with
detection in the loop.

The children are started with `spawn` (forking a process that runs threads is unsafe). Each one
gets the watchlist when it does not have the version a chunk was detected with (watchlists
pickle; the matcher recompiles in the child) and returns encoded records. A child that dies is
replaced and the chunks not yet sent are tried again in new ones.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime
from typing import Any

from newswatch.logs import setup_logging
from processors.pipeline import DetectionStage, Detector, EncodedDetection, InboundRecord
from processors.stories import Sketcher

log = logging.getLogger("newswatch.processors")

# Chunks per child and batch: enough that the loop sends one chunk while the children detect the
# next, few enough that each hand-over (a pickle each way) stays a small share of a chunk's work.
CHUNKS_PER_PROCESS = 4

# The child's own state: its stage, and the watchlist it was last given.
_child: dict[str, Any] = {}


def _exit_with_parent(parent: int) -> None:
    # A worker killed with SIGKILL cannot stop its children: each notices and goes too.
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(0)


def _start_child(detect: Detector, level: int, parent: int) -> None:
    setup_logging(level)
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True, name="exit-with-parent").start()
    _child["stage"] = DetectionStage(detect=detect, current_watchlist=lambda: _child["watchlist"],
                                     sketcher=Sketcher())


def _detect_in_child(records: Sequence[InboundRecord], now: datetime, version: str,
                     watchlist: Any | None) -> EncodedDetection | None:
    """The chunk detected with watchlist `version`; None when this child does not have it yet."""
    if watchlist is not None:
        _child["watchlist"] = watchlist
    current = _child.get("watchlist")
    if current is None or current.version != version:
        return None
    return _child["stage"].process(records, now).encoded()


def chunked(records: Sequence[InboundRecord], chunks: int) -> list[Sequence[InboundRecord]]:
    """`records` in at most `chunks` consecutive slices of nearly equal length, in order."""
    count = max(1, min(chunks, len(records)))
    size, extra = divmod(len(records), count)
    slices, start = [], 0
    for n in range(count):
        end = start + size + (1 if n < extra else 0)
        slices.append(records[start:end])
        start = end
    return [piece for piece in slices if piece]


def _forget(future: asyncio.Future) -> None:
    # A chunk abandoned after its pool broke: its error is known, do not log it as unretrieved.
    if not future.cancelled():
        future.exception()


def merged(parts: Sequence[EncodedDetection]) -> EncodedDetection:
    """Several chunks' results as one, in order."""
    outcomes: Counter = Counter()
    for part in parts:
        outcomes.update(part.outcomes)
    return EncodedDetection(candidates=[c for part in parts for c in part.candidates],
                            dead_letters=[d for part in parts for d in part.dead_letters], outcomes=outcomes)


class DetectionProcess:
    """Detection in `processes` child processes, with the watchlist `current_watchlist()` returns
    when a batch starts. `parts(records, now)` yields each chunk's records in order as they are
    ready; `await detect(records, now)` returns the whole batch's."""

    def __init__(self, *, detect: Detector, current_watchlist: Callable[[], Any], processes: int = 1):
        self._detect = detect
        self._current_watchlist = current_watchlist
        self._processes = processes
        self._pool: ProcessPoolExecutor | None = None
        self._sent_version: str | None = None  # the version every chunk of the last batch carried

    def _ensure_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=self._processes,
                                             mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_start_child,
                                             initargs=(self._detect, logging.getLogger().level, os.getpid()))
            self._sent_version = None
        return self._pool

    async def parts(self, records: Sequence[InboundRecord], now: datetime) -> AsyncIterator[EncodedDetection]:
        loop = asyncio.get_running_loop()
        watchlist = self._current_watchlist()
        chunks = chunked(list(records), self._processes * CHUNKS_PER_PROCESS)
        deaths = 0
        position = 0  # chunks before it were yielded

        def submit(pool: ProcessPoolExecutor, chunk: Sequence[InboundRecord], with_watchlist: bool) -> asyncio.Future:
            return loop.run_in_executor(pool, _detect_in_child, chunk, now, watchlist.version,
                                        watchlist if with_watchlist else None)

        while position < len(chunks):
            pool = self._ensure_pool()
            # A new version goes with every chunk; after that, only to a child that lacks it.
            fresh = watchlist.version != self._sent_version
            pending: list[asyncio.Future] = []
            n = -1
            try:
                pending = [submit(pool, chunk, fresh) for chunk in chunks[position:]]
                self._sent_version = watchlist.version
                for n, future in enumerate(pending):
                    result = await future
                    if result is None:
                        result = await submit(pool, chunks[position], True)
                    if result is None:
                        raise AssertionError("the detection process ignored the watchlist it was sent")
                    position += 1
                    yield result
            except BrokenProcessPool:
                for abandoned in pending[n + 1:]:
                    abandoned.add_done_callback(_forget)
                deaths += 1
                log.error("detection_process_died", extra={"fields": {"attempt": deaths}})
                self.close()
                if deaths == 2:
                    raise

    async def detect(self, records: Sequence[InboundRecord], now: datetime) -> EncodedDetection:
        return merged([part async for part in self.parts(records, now)])

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
