"""Benchmark: one full poll cycle over 5,000 feeds on a local server (95 % answer 304, 5 % carry 20
new entries), through the real poller: guarded HTTP client, limits, parser processes, dedupe and
the SQLite outbox (Kafka publishing is a separate loop and not part of the cycle).

Prints feeds/s, articles/s, CPU per feed, and the ratio to a baseline measured in the same run:
the same requests (same conditional headers, same concurrency) sent by a bare httpx client that
neither parses nor records anything. Goal: the cycle within 60 s on a 2-core machine.

    .venv/bin/python bench/ingest_poll.py [--feeds 5000] [--changed 0.05] [--entries 20] [--pages 0.05]

With `--pages 0.05`, 5 % of the new entries are teasers whose page ingest fetches and extracts
(served by the same server, a realistic page with boilerplate); the cycle then ends when every
page has been read, and the CPU of one page extraction is printed next to the CPU of one feed poll.

The feed server runs in its own process on 50 loopback addresses (127.0.0.1-50) so the per-host
limit behaves as it would against many publishers.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

HOSTS = 50
WORDS = {
    "en": ("Defence ministers discuss air defence deliveries", "The ministers discussed the delivery schedule "
           "of air defence systems, training of crews and the next round of 2+2 talks. "),
    "ru": ("Министры обсудили поставки систем ПВО", "Министры обсудили график поставок систем ПВО, подготовку "
           "расчётов и следующий раунд переговоров «2+2». "),
    "ar": ("الوزيران يبحثان توريد منظومات الدفاع الجوي", "بحث الوزيران جدول توريد منظومات الدفاع الجوي وتدريب "
           "الأطقم والجولة المقبلة من محادثات 2+2. "),
}


def host_of(index: int) -> str:
    return f"127.0.0.{1 + index % HOSTS}"


def needs_page(index: int, n: int, entries: int, page_every: int) -> bool:
    """Whether entry n of feed `index` is a teaser whose page ingest fetches (1 in `page_every`)."""
    return page_every > 0 and (index * entries + n) % page_every == 0


def changed_feed(index: int, entries: int, page_every: int = 0, port: int = 0) -> bytes:
    lang = ("en", "ru", "ar")[index % 3]
    title, text = WORDS[lang]
    items = []
    for n in range(entries):
        if needs_page(index, n, entries, page_every):  # a teaser: one sentence, the story on its page
            link, body = f"http://{host_of(index)}:{port}/page/{index}/{n}", text.split(". ")[0] + "."
        else:  # the full text in the feed (longer than full_text_min_chars): no page wanted
            link, body = f"http://pub{index}.example/news/{n}", text * 10
        items.append(
            f"<item><title>{title} ({index}.{n})</title><link>{link}</link>"
            f"<guid isPermaLink=\"false\">{index}-{n}</guid><pubDate>Sat, 28 Nov 2026 09:{n % 60:02d}:00 +0000</pubDate>"
            f"<description>&lt;p&gt;{body}&lt;/p&gt;</description></item>")
    items = "".join(items)
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Publisher {index}</title>'
            f"<language>{lang}</language><link>http://pub{index}.example/</link>{items}</channel></rss>").encode()


def is_changed(index: int, every: int) -> bool:
    return index % every == 0


# --- the feed server (child process) --------------------------------------------------------

def article_pages() -> dict[str, bytes]:
    """One realistic page per language (a story inside site boilerplate, tests/support/pages.py)."""
    from tests.support.pages import load_articles, render_page

    chosen = {}
    for article in load_articles():
        chosen.setdefault(article["lang"], article)
    return {lang: render_page(article, "agency").encode() for lang, article in chosen.items()}


def serve(port: int, feeds: int, every: int, entries: int, page_every: int) -> None:
    from aiohttp import web

    bodies = {i: changed_feed(i, entries, page_every, port) for i in range(feeds) if is_changed(i, every)}
    pages = article_pages()

    async def page(request: web.Request) -> web.Response:
        lang = ("en", "ru", "ar")[int(request.match_info["index"]) % 3]
        return web.Response(body=pages[lang], headers={"Content-Type": "text/html; charset=utf-8"})

    async def handler(request: web.Request) -> web.Response:
        index = int(request.match_info["index"])
        if index in bodies:
            return web.Response(body=bodies[index], headers={"ETag": '"v2"', "Content-Type": "application/rss+xml"})
        if request.headers.get("If-None-Match") == '"v1"':
            return web.Response(status=304, headers={"ETag": '"v1"'})
        return web.Response(body=b"<rss version='2.0'><channel><title>x</title></channel></rss>",
                            headers={"ETag": '"v1"'})

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/feed/{index}", handler)
        app.router.add_get("/page/{index}/{n}", page)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        for n in range(HOSTS):
            await web.TCPSite(runner, f"127.0.0.{1 + n}", port, backlog=1024).start()
        print("ready", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


# --- the measured client ---------------------------------------------------------------------

def worker_cpu_s(pids) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            pass
    return total


async def baseline(urls: list[str], concurrency: int) -> tuple[float, float]:
    """The same requests through a bare httpx client: no guard, no parsing, no state."""
    import httpx

    semaphore = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, trust_env=False) as client:
        async def one(url: str) -> None:
            async with semaphore:
                response = await client.get(url, headers={"If-None-Match": '"v1"'})
                response.read()

        cpu, began = time.process_time(), time.perf_counter()
        await asyncio.gather(*(one(url) for url in urls))
        return time.perf_counter() - began, time.process_time() - cpu


async def full_cycle(urls: list[str], state_dir: Path, full_text: str = "auto") -> dict:
    from ingest.feeds_config import FeedConfig
    from ingest.metrics import IngestMetrics
    from ingest.parse_pool import ParsePool
    from ingest.poller import Poller, build_client
    from ingest.seen import FeedState, IngestStore
    from ingest.settings import IngestSettings

    settings = IngestSettings(allow_private_networks=True, state_dir=state_dir)
    store = IngestStore.in_dir(state_dir)
    for url in urls:  # a previous cycle left validators behind
        store.save_feed(FeedState(url, etag='"v1"'))
    feeds = [FeedConfig(url=url, full_text=full_text) for url in urls]
    parser = ParsePool(settings.parse_workers, settings.parse_budget_s)
    extractor = ParsePool(settings.extract_workers, settings.extract_budget_s)  # as `newswatch ingest` runs it
    await asyncio.gather(*map(asyncio.wrap_future, parser._warming + extractor._warming))
    pids = list(parser._executor._processes) + list(extractor._executor._processes)
    worker_cpu_before = worker_cpu_s(pids)
    metrics = IngestMetrics()
    async with build_client(settings) as client:
        poller = Poller(feeds, client=client, store=store, parser=parser, metrics=metrics, settings=settings,
                        extractor=extractor)
        cpu, began = time.process_time(), time.perf_counter()
        reports = await poller.poll_all()
        polls_wall = time.perf_counter() - began
        while store.held_count():  # the cycle ends when every page has been read (or given up)
            await asyncio.sleep(0.02)
        wall = time.perf_counter() - began
        cpu_main = time.process_time() - cpu
        await poller.pages.close()
    cpu_workers = worker_cpu_s(pids) - worker_cpu_before
    page_outcomes = {f"{s.labels['outcome']}/{s.labels['reason']}": int(s.value)
                     for m in metrics.page_fetches.collect() for s in m.samples
                     if s.name.endswith("_total") and s.value}
    extract = [s for m in metrics.extract_seconds.collect() for s in m.samples]
    extract_sum = next((s.value for s in extract if s.name.endswith("_sum")), 0.0)
    extract_count = next((s.value for s in extract if s.name.endswith("_count")), 0.0)
    parser.close()
    extractor.close()
    outcomes: dict[str, int] = {}
    for report in reports:
        outcomes[report.outcome] = outcomes.get(report.outcome, 0) + 1
    queued = sum(report.queued for report in reports)
    pending = store.pending_count()
    store.close()
    return dict(wall=wall, polls_wall=polls_wall, cpu_main=cpu_main, cpu_workers=cpu_workers, outcomes=outcomes,
                queued=queued, pending=pending, page_outcomes=page_outcomes,
                extract_wall=extract_sum / extract_count if extract_count else 0.0)


def extraction_cpu_s(repeat: int = 30) -> float:
    """CPU of one page extraction (the pure function on this run's pages), measured in this process."""
    from ingest.extract import extract_page

    pages = list(article_pages().values())
    extract_page(pages[0], "http://bench.example/p", content_type="text/html")  # imports and caches
    began = time.process_time()
    for n in range(repeat):
        extract_page(pages[n % len(pages)], "http://bench.example/p", content_type="text/html")
    return (time.process_time() - began) / repeat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=5000)
    parser.add_argument("--changed", type=float, default=0.05, help="share of feeds carrying new entries")
    parser.add_argument("--entries", type=int, default=20, help="new entries per changed feed")
    parser.add_argument("--pages", type=float, default=0.0,
                        help="share of the new entries that are teasers whose page ingest fetches (e.g. 0.05)")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    every = max(1, round(1 / args.changed))
    page_every = round(1 / args.pages) if args.pages else 0
    if args.serve:
        serve(args.serve, args.feeds, every, args.entries, page_every)
        return

    from newswatch.broker.local import free_port

    logging.getLogger("ingest").setLevel(logging.ERROR)  # one line per page given up would drown the figures

    port = free_port()
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port), "--feeds", str(args.feeds),
                               "--changed", str(args.changed), "--entries", str(args.entries),
                               "--pages", str(args.pages)],
                              stdout=subprocess.PIPE, text=True)
    try:
        if server.stdout.readline().strip() != "ready":
            raise SystemExit("the feed server did not start")
        urls = [f"http://{host_of(i)}:{port}/feed/{i}" for i in range(args.feeds)]
        base_wall, base_cpu = asyncio.run(baseline(urls, 50))
        without_pages = None
        if args.pages:  # the same feeds with full_text: never, as a second baseline of the same run
            with tempfile.TemporaryDirectory(prefix="newswatch-bench-") as state_dir:
                without_pages = asyncio.run(full_cycle(urls, Path(state_dir), "never"))
        with tempfile.TemporaryDirectory(prefix="newswatch-bench-") as state_dir:
            result = asyncio.run(full_cycle(urls, Path(state_dir)))
    finally:
        server.terminate()
        server.wait(10)

    changed = sum(1 for i in range(args.feeds) if is_changed(i, every))
    wall, cpu = result["wall"], result["cpu_main"] + result["cpu_workers"]
    print(f"feeds:            {args.feeds} ({changed} with {args.entries} new entries, the rest 304)")
    print(f"outcomes:         {result['outcomes']}")
    print(f"articles queued:  {result['queued']} (outbox holds {result['pending']})")
    print(f"cycle wall time:  {wall:.2f} s   (goal: within 60 s -> {'met' if wall <= 60 else 'MISSED'})")
    print(f"feeds/s:          {args.feeds / wall:.0f}")
    print(f"articles/s:       {result['queued'] / wall:.0f}")
    print(f"CPU per feed:     {cpu / args.feeds * 1000:.2f} ms  (poller {result['cpu_main']:.2f} s + "
          f"parser and extraction workers {result['cpu_workers']:.2f} s)")
    print(f"baseline:         bare httpx, same requests, no parse/state: {base_wall:.2f} s wall, "
          f"{base_cpu / args.feeds * 1000:.2f} ms CPU per feed")
    print(f"ratio to baseline: {wall / base_wall:.2f}x wall, {cpu / base_cpu:.2f}x CPU")
    if page_every:
        wanted = sum(needs_page(i, n, args.entries, page_every) for i in range(args.feeds) if is_changed(i, every)
                     for n in range(args.entries))
        per_page = extraction_cpu_s()
        print(f"pages:            {wanted} teasers wanted their page; outcomes {result['page_outcomes']}")
        print(f"polls done in:    {result['polls_wall']:.2f} s; every page read by {wall:.2f} s")
        never_cpu = without_pages["cpu_main"] + without_pages["cpu_workers"]
        print(f"same feeds, full_text: never (same run): cycle {without_pages['wall']:.2f} s, "
              f"{never_cpu / args.feeds * 1000:.2f} ms CPU per feed -> pages cost {wall / without_pages['wall']:.2f}x "
              f"wall, {cpu / never_cpu:.2f}x CPU, {(cpu - never_cpu) / max(1, wanted) * 1000:.1f} ms CPU per page "
              f"(fetch + extract + state)")
        print(f"CPU per page extraction: {per_page * 1000:.2f} ms (in-process, same pages), "
              f"{result['extract_wall'] * 1000:.2f} ms wall per extraction in the workers; "
              f"CPU per feed poll: {cpu / args.feeds * 1000:.2f} ms -> one extraction costs "
              f"{per_page / (cpu / args.feeds):.1f} feed polls")


if __name__ == "__main__":
    main()
