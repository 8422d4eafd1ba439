"""Detection beside the worker's event loop: one child process per worker decodes, detects,
sketches and encodes each batch of articles, while faust's loop consumes, produces and runs the
story stage. Detection is the bulk of the CPU per article and needs no state, so it is the part
that can leave the loop.

The child is started with `spawn` (forking a process that runs threads is unsafe); it receives the
watchlist once per version (watchlists pickle; the matcher recompiles in the child) and returns
encoded records. A child that dies is replaced and the batch is tried again in a new one.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime
from typing import Any

from newswatch.logs import setup_logging
from processors.pipeline import DetectionStage, Detector, EncodedDetection, InboundRecord
from processors.stories import Sketcher

log = logging.getLogger("newswatch.processors")

# The child's own state: the detector, the watchlist it was last given, and its stage.
_child: dict[str, Any] = {}


def _exit_with_parent(parent: int) -> None:
    # A worker killed with SIGKILL cannot stop its child: the child notices and goes too.
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(0)


def _start_child(detect: Detector, level: int, parent: int) -> None:
    setup_logging(level)
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True, name="exit-with-parent").start()
    _child["detect"] = detect
    _child["stage"] = DetectionStage(detect=detect, current_watchlist=lambda: _child["watchlist"],
                                     sketcher=Sketcher())


def _detect_in_child(records: Sequence[InboundRecord], now: datetime, watchlist: Any | None) -> EncodedDetection:
    if watchlist is not None:
        _child["watchlist"] = watchlist
    if "watchlist" not in _child:
        raise LookupError("the detection process has no watchlist yet")
    return _child["stage"].process(records, now).encoded()


class DetectionProcess:
    """`await detect(records, now)`: the batch detected in the child process, with the watchlist
    that `current_watchlist()` returns now (sent to the child only when its version changed)."""

    def __init__(self, *, detect: Detector, current_watchlist: Callable[[], Any]):
        self._detect = detect
        self._current_watchlist = current_watchlist
        self._pool: ProcessPoolExecutor | None = None
        self._sent_version: str | None = None

    def _ensure_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_start_child,
                                             initargs=(self._detect, logging.getLogger().level, os.getpid()))
            self._sent_version = None
        return self._pool

    async def detect(self, records: Sequence[InboundRecord], now: datetime) -> EncodedDetection:
        loop = asyncio.get_running_loop()
        for attempt in (1, 2):
            pool = self._ensure_pool()
            watchlist = self._current_watchlist()
            update = watchlist if watchlist.version != self._sent_version else None
            try:
                result = await loop.run_in_executor(pool, _detect_in_child, list(records), now, update)
            except BrokenProcessPool:
                log.error("detection_process_died", extra={"fields": {"attempt": attempt}})
                self.close()
                if attempt == 2:
                    raise
                continue
            self._sent_version = watchlist.version
            return result
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
