"""Benchmark for the web console: its store at 100,000 matches, and the pages that read it.

Builds articles from the repository's Arabic, English and Russian evaluation texts (each copy
varied by a number and words), then measures in the same run:
  - processor output: the processors' own pipeline in memory (processors.pipeline.ArticleProcessor,
    as `newswatch backtest` runs it: decoding, dedup, detection, story grouping, Match building),
    plus encoding each Match: what one worker emits with Kafka taken away, an upper bound;
  - store ingest: the console's Store.apply in batches of 2,000 (as its Kafka feeder hands them),
    over the whole load and over the last 10 % (when the store is full);
  - the stories page (rendered HTML, 50 rows, with and without filters) and searches (a model code
    in Cyrillic, an Arabic word, a Russian word, a rare word), through the real app, p50 and p95.

    .venv/bin/python bench/console.py [--matches 100000] [--requests 200]

Goals: p95 < 200 ms for the stories page and a search at 100,000 stored matches; the store ingests
faster than a processor emits (ratio > 1). Rates are per CPU second of this process (the shared
machine's load skews wall time; both are printed), as bench/detect.py measures "per core".
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from console.app import ConsoleContext, create_app  # noqa: E402
from console.store import Consumed, Store, TopicKinds  # noqa: E402
from console.tester import LiveWatchlists  # noqa: E402
from newswatch.kafka_settings import Topics  # noqa: E402
from newswatch.schemas import Article, FeedRef  # noqa: E402
from processors.detection import detect, load_watchlists  # noqa: E402
from processors.pipeline import ArticleProcessor, InboundRecord, MemoryState  # noqa: E402
from processors.stories import Sketcher, StoryIndex  # noqa: E402

DATA = REPO / "tests" / "data" / "detection"
WATCHLISTS = REPO / "seeds" / "watchlists"
SOURCES = ["RT Arabic", "TASS", "Reuters", "Al Jazeera", "RIA Novosti", "Defense News", "Sputnik Arabic", "AP"]
LETTERS = {"en": "abcdefghijklmnopqrstuvwxyz", "ru": "абвгдежзиклмнопрстуфхцчшщыэюя",
           "ar": "ابتثجحخدذرزسشصضطظعغفقكلمنهوي"}
FILLER = {"ar": ["القاهرة", "موسكو", "الرياض", "بغداد", "تقرير", "مصادر", "الجيش", "الحكومة"],
          "ru": ["Москва", "Минобороны", "источник", "сообщил", "контракт", "поставка", "Дели", "Анкара"],
          "en": ["officials", "said", "report", "ministry", "sources", "contract", "delivery", "Ankara"]}


def base_documents() -> list[dict]:
    docs = []
    for name in ("labelled", "heldout", "longform"):
        for line in (DATA / f"{name}.jsonl").read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                docs.append({"title": row.get("title", ""), "text": row.get("text", ""), "lang": row.get("lang")})
    return docs


def pseudo_words(rng: random.Random, lang: str, count: int) -> str:
    letters = LETTERS.get(lang, LETTERS["en"])
    return " ".join("".join(rng.choice(letters) for _ in range(rng.randint(4, 8))) for _ in range(count))


def articles(count: int, rng: random.Random, watchlist) -> list[Article]:
    """`count` articles that each raise a topic: an evaluation text led by made-up words, so most
    are stories of their own; every third one is another outlet's copy of the one before it."""
    positives = [d for d in base_documents()
                 if detect(SimpleNamespace(title=d["title"], text=d["text"], summary="", lang=d["lang"]), watchlist)]
    start = datetime.now(timezone.utc) - timedelta(days=6)
    out: list[Article] = []
    for i in range(count):
        at = start + timedelta(seconds=i * 5)
        if i % 3 == 2:
            previous = out[-1]
            out.append(previous.model_copy(update={"id": f"bench-{i}", "url": f"https://news.example/{i}",
                                                   "source": rng.choice(SOURCES), "fetched_at": at}))
            continue
        doc = positives[i % len(positives)]
        lang = doc["lang"] if doc["lang"] in LETTERS else "en"
        words = " ".join(rng.sample(FILLER[lang], 3))
        out.append(Article(id=f"bench-{i}", url=f"https://news.example/{i}",
                           title=f"{pseudo_words(rng, lang, 3)} {doc['title']}",
                           text=f"{pseudo_words(rng, lang, 12)}. {doc['text']} {words}", lang=doc["lang"],
                           published_at=at, fetched_at=at, feed=FeedRef(url="https://news.example/feed"),
                           source=rng.choice(SOURCES)))
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def timed(client, path: str, params: dict, times: int) -> list[float]:
    out = []
    for _ in range(times):
        began = time.perf_counter()
        response = client.get(path, params=params)
        out.append((time.perf_counter() - began) * 1000)
        assert response.status_code == 200, (path, params, response.status_code)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--matches", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200, help="timed requests per page kind")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    watchlist = load_watchlists(WATCHLISTS)
    docs = articles(args.matches, rng, watchlist)

    # processor output: the processors' pipeline in memory, then each Match encoded for the topic
    processor = ArticleProcessor(detect=detect, current_watchlist=lambda: watchlist,
                                 stories=StoryIndex(Sketcher(), similarity=0.5, window_ms=3 * 86_400_000),
                                 processed=MemoryState(), story_state=MemoryState(),
                                 dedup_retention_ms=10 * 365 * 86_400_000)
    inbound = [InboundRecord("bench.articles", 0, i, int(a.fetched_at.timestamp() * 1000), a.id.encode(), a.encode())
               for i, a in enumerate(docs)]
    now = datetime.now(timezone.utc)
    encoded: list[bytes] = []
    wall, cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(inbound), 1000):
        encoded.extend(m.encode() for m in processor.process(inbound[start:start + 1000], now).matches)
    processor_wall = len(encoded) / (time.perf_counter() - wall)
    processor_rate = len(encoded) / (time.process_time() - cpu)

    kinds = TopicKinds.for_topics(Topics("bench."))
    with tempfile.TemporaryDirectory(prefix="newswatch-bench-console-") as folder:
        store = Store(Path(folder) / "console.db", kinds)
        batch = 2000
        tail_from = int(len(encoded) * 0.9)
        wall, cpu = time.perf_counter(), time.process_time()
        tail_cpu = None
        for start in range(0, len(encoded), batch):
            if tail_cpu is None and start >= tail_from:
                tail_cpu = time.process_time()
            records = [Consumed(kinds.matches, 0, start + j, 0, None, value)
                       for j, value in enumerate(encoded[start:start + batch])]
            store.apply(records, 0)
        ingest_wall = len(encoded) / (time.perf_counter() - wall)
        ingest_rate = len(encoded) / (time.process_time() - cpu)
        tail_rate = (len(encoded) - tail_from) / (time.process_time() - (tail_cpu or cpu))
        counts = store.counts()
        size_mb = (Path(folder) / "console.db").stat().st_size / 1e6

        from fastapi.testclient import TestClient

        client = TestClient(create_app(ConsoleContext(store=store, token=None, watchlists=LiveWatchlists(WATCHLISTS))))
        n = args.requests
        pages = {
            "stories page": ("/stories", {}),
            "stories, topic+lang": ("/stories", {"topic": "air_defense_system", "lang": "ru"}),
            "stories, min score+time": ("/stories", {"min_score": "0.9", "since": (datetime.now(timezone.utc) - timedelta(days=2)).date().isoformat()}),
            "stories API (JSON)": ("/api/stories", {}),
            "search «С-400»": ("/stories", {"q": "С-400"}),
            "search Arabic word": ("/stories", {"q": "صفقة"}),
            "search Russian word": ("/stories", {"q": "контракт"}),
            "search rare word": ("/stories", {"q": "Анкара Минобороны 4242"}),
        }
        results = {}
        for name, (path, params) in pages.items():
            timed(client, path, params, 5)  # warm
            results[name] = timed(client, path, params, n)
        rows = len(store.stories(store_filter(q="С-400")))
        store.close()

    print(f"{len(docs):,} articles -> {len(encoded):,} matches")
    print(f"store: {counts['articles']:,} matches in {counts['stories']:,} stories, {size_mb:.0f} MB on disk")
    print(f"processor output (pipeline in memory + encode)  {processor_rate:8,.0f} matches/s per CPU s "
          f"({processor_wall:,.0f}/s wall)")
    print(f"store ingest (Store.apply, batches of {batch})    {ingest_rate:8,.0f} matches/s per CPU s "
          f"({ingest_wall:,.0f}/s wall) -> {ingest_rate / processor_rate:.2f}x the processor")
    print(f"store ingest, last 10 % (store nearly full)   {tail_rate:8,.0f} matches/s per CPU s "
          f"-> {tail_rate / processor_rate:.2f}x the processor")
    print(f"{'request':32s} {'p50 ms':>8s} {'p95 ms':>8s} {'max ms':>8s}   ({n} requests each)")
    worst = 0.0
    for name, values in results.items():
        p95 = percentile(values, 0.95)
        worst = max(worst, p95)
        print(f"{name:32s} {statistics.median(values):8.1f} {p95:8.1f} {max(values):8.1f}")
    print(f"search «С-400» returned {rows} stories (page size 50)")
    print(f"worst p95 {worst:.1f} ms (goal < 200 ms): {'ok' if worst < 200 else 'MISSED'}; "
          f"ingest/processor {ingest_rate / processor_rate:.2f} (goal > 1): {'ok' if ingest_rate > processor_rate else 'MISSED'}")


def store_filter(**kwargs):
    from console.store import StoryFilter

    return StoryFilter(**kwargs)


if __name__ == "__main__":
    main()
