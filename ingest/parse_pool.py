"""Run parse_feed (and extract_page, for article pages) in worker processes with a time budget per document, off the event loop.

A 10 MB feed or a pathological document must neither stall polling nor pin a CPU for ever:
each parse gets `budget_s`; when it overruns, the workers are killed and a fresh pool is started
(a process is the only thing in Python that can be stopped mid-computation). Documents that were
in the killed pool with it are parsed once more in the new one. Workers also get an address-space
limit so one huge document cannot take the machine's memory, and each one exits when the poller
that started it is gone (a poller killed with SIGKILL cannot stop them, and the forkserver, not the
poller, is their parent).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import resource
import select
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from ingest.extract import PageRefused, PageText, extract_page
from ingest.parse import FeedRefused, ParsedFeed, parse_feed


def _start_worker(memory_mb: int, poller: int) -> None:
    threading.Thread(target=_exit_with_poller, args=(poller,), daemon=True, name="exit-with-poller").start()
    if memory_mb > 0:
        limit = memory_mb * 1024 * 1024
        try:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        except (ValueError, OSError):  # not permitted here; the time budget still applies
            pass


def _exit_with_poller(poller: int) -> None:
    """Exit this worker once process `poller` has ended: a pidfd (Linux) is readable from then on and
    cannot be fooled by a reused pid; elsewhere the pid is polled."""
    try:
        handle = os.pidfd_open(poller)
    except ProcessLookupError:
        os._exit(0)  # gone before this worker started
    except (AttributeError, OSError):
        while True:
            time.sleep(1.0)
            try:
                os.kill(poller, 0)
            except ProcessLookupError:
                os._exit(0)
            except PermissionError:
                pass
    select.select([handle], [], [])
    os._exit(0)


def _warm_up() -> bool:
    # The worker has started and imported feedparser (via this module); the page extractor and
    # the language model are loaded now too, so the first page or undeclared feed does not pay
    # for them inside its time budget.
    import trafilatura  # noqa: F401

    from ingest import langid
    langid.warm_up()
    return True


def _parse(content: bytes, base_url: str, kwargs: dict) -> ParsedFeed:
    try:
        return parse_feed(content, base_url, **kwargs)
    except MemoryError:
        raise FeedRefused("too_large", "the document needs more memory than a parser worker may use") from None


def _extract(content: bytes, url: str, content_type: str | None, max_chars: int) -> PageText:
    try:
        return extract_page(content, url, content_type=content_type, max_chars=max_chars)
    except MemoryError:
        raise PageRefused("too_large", "the page needs more memory than a worker may use") from None


class ParsePool:
    def __init__(self, workers: int = 2, budget_s: float = 20.0, memory_mb: int = 1024):
        self.workers = workers
        self.budget_s = budget_s
        self.memory_mb = memory_mb
        self._executor = self._new_executor()
        self.restarts = 0

    def _new_executor(self) -> ProcessPoolExecutor:
        # forkserver: the poller has threads (Kafka's I/O thread), and forking a threaded process is unsafe.
        executor = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("forkserver"),
                                       initializer=_start_worker, initargs=(self.memory_mb, os.getpid()))
        # Starting workers takes a second on a busy machine; that must not count against a document's budget.
        self._warming = [executor.submit(_warm_up) for _ in range(self.workers)]
        return executor

    async def parse(self, content: bytes, base_url: str, **kwargs) -> ParsedFeed:
        """parse_feed(content, base_url, **kwargs) in a worker; FeedRefused("parse_timeout") on overrun."""
        return await self.call(_parse, content, base_url, kwargs)

    async def extract(self, content: bytes, url: str, *, content_type: str | None, max_chars: int,
                      budget_s: float) -> PageText:
        """extract_page(...) in a worker; PageRefused("extract_timeout") when it takes over `budget_s`."""
        try:
            return await self.call(_extract, content, url, content_type, max_chars, budget_s=budget_s)
        except FeedRefused as exc:
            reason = "extract_timeout" if exc.reason == "parse_timeout" else exc.reason
            raise PageRefused(reason, exc.detail.replace("parsing", "extraction")) from None

    async def call(self, fn, *args, budget_s: float | None = None):
        """fn(*args) in a worker within the time budget; FeedRefused("parse_timeout") on overrun."""
        budget_s = budget_s or self.budget_s
        loop = asyncio.get_running_loop()
        for attempt in (1, 2):
            executor = self._executor
            try:
                await asyncio.wait_for(asyncio.gather(*map(asyncio.wrap_future, self._warming)), 120)
            except (BrokenProcessPool, TimeoutError):
                self._restart(executor)
                if attempt == 2:
                    raise FeedRefused("parse_error", "the parser workers did not start") from None
                continue
            future = loop.run_in_executor(executor, fn, *args)
            try:
                return await asyncio.wait_for(future, budget_s)
            except TimeoutError:
                self._restart(executor)
                raise FeedRefused("parse_timeout", f"parsing took longer than {budget_s:g} s") from None
            except BrokenProcessPool:
                # Another document's overrun (or a crashed worker) took this pool down; try once more.
                self._restart(executor)
                if attempt == 2:
                    raise FeedRefused("parse_error", "the parser worker died") from None
        raise AssertionError("unreachable")

    def _restart(self, executor: ProcessPoolExecutor) -> None:
        if executor is not self._executor:
            return  # someone else already replaced it
        self._executor = self._new_executor()
        self.restarts += 1
        for process in list((getattr(executor, "_processes", None) or {}).values()):
            process.kill()  # ProcessPoolExecutor has no public way to stop a running task
        executor.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


class InlineParser:
    """The same interface in a thread of this process: for `newswatch fetch` and small tests."""

    async def parse(self, content: bytes, base_url: str, **kwargs) -> ParsedFeed:
        return await asyncio.to_thread(parse_feed, content, base_url, **kwargs)

    async def extract(self, content: bytes, url: str, *, content_type: str | None, max_chars: int,
                      budget_s: float) -> PageText:
        return await asyncio.to_thread(_extract, content, url, content_type, max_chars)

    def close(self) -> None:
        pass
