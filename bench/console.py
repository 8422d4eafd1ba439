"""Benchmark for the web console: its store at 100,000 matches, and the pages that read it.

Builds Match records the way the processors do (the real detector over the repository's Arabic,
English and Russian evaluation texts, each copy varied by a number and words so stories differ),
then measures in the same run:
  - processor output: detection + Match building + encoding per article, in process (no Kafka, no
    story grouping): an upper bound of what one processor worker can emit;
  - store ingest: the console's Store.apply in batches of 2,000 (as its Kafka feeder hands them),
    over the whole load and over the last 10 % (when the store is full);
  - the stories page (rendered HTML, 50 rows, with and without filters) and searches (a model code
    in Cyrillic, an Arabic word, a Russian word, a rare word), through the real app, p50 and p95.

    .venv/bin/python bench/console.py [--matches 100000] [--requests 200]

Goals: p95 < 200 ms for the stories page and a search at 100,000 stored matches; the store ingests
faster than a processor emits (ratio > 1).
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
from newswatch.schemas import Article, FeedRef, Source  # noqa: E402
from processors.detection import detect, load_watchlists  # noqa: E402
from processors.match import build_match  # noqa: E402

DATA = REPO / "tests" / "data" / "detection"
WATCHLISTS = REPO / "seeds" / "watchlists"
SOURCES = ["RT Arabic", "TASS", "Reuters", "Al Jazeera", "RIA Novosti", "Defense News", "Sputnik Arabic", "AP"]
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


def articles(count: int, rng: random.Random, watchlist) -> list[Article]:
    """`count` varied articles that all raise at least one topic."""
    positives = [d for d in base_documents()
                 if detect(SimpleNamespace(title=d["title"], text=d["text"], summary="", lang=d["lang"]), watchlist)]
    start = datetime.now(timezone.utc) - timedelta(days=6)
    out = []
    for i in range(count):
        doc = positives[i % len(positives)]
        words = " ".join(rng.sample(FILLER.get(doc["lang"], FILLER["en"]), 3))
        at = start + timedelta(seconds=i * 5)
        out.append(Article(id=f"bench-{i}", url=f"https://news.example/{i}", title=f"{doc['title']} {i}",
                           text=f"{doc['text']} {words} {i}", lang=doc["lang"], published_at=at, fetched_at=at,
                           feed=FeedRef(url="https://news.example/feed"), source=rng.choice(SOURCES)))
    return out


def to_match(article: Article, watchlist, story: str) -> bytes:
    hits = detect(article, watchlist)
    source = Source(article_id=article.id, source=article.source, url=article.url, feed_url=article.feed.url,
                    published_at=article.published_at)
    return build_match(article, hits, story_id=story, sources=[source], watchlist_version=watchlist.version,
                       detected_at=article.fetched_at).encode()


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

    # processor output, in process: detection + Match + encoding (no Kafka, no story grouping)
    sample = docs[: min(20_000, len(docs))]
    began = time.perf_counter()
    encoded_sample = [to_match(a, watchlist, f"st-{i // 3}") for i, a in enumerate(sample)]
    processor_rate = len(sample) / (time.perf_counter() - began)
    encoded = encoded_sample + [to_match(a, watchlist, f"st-{(i + len(sample)) // 3}")
                                for i, a in enumerate(docs[len(sample):])]

    kinds = TopicKinds.for_topics(Topics("bench."))
    with tempfile.TemporaryDirectory(prefix="newswatch-bench-console-") as folder:
        store = Store(Path(folder) / "console.db", kinds)
        batch = 2000
        tail_from = int(len(encoded) * 0.9)
        began = time.perf_counter()
        tail_began = None
        for start in range(0, len(encoded), batch):
            if tail_began is None and start >= tail_from:
                tail_began = time.perf_counter()
            records = [Consumed(kinds.matches, 0, start + j, 0, None, value)
                       for j, value in enumerate(encoded[start:start + batch])]
            store.apply(records, 0)
        ended = time.perf_counter()
        ingest_rate = len(encoded) / (ended - began)
        tail_rate = (len(encoded) - tail_from) / (ended - (tail_began or began))
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

    print(f"store: {counts['articles']:,} matches in {counts['stories']:,} stories, {size_mb:.0f} MB on disk")
    print(f"processor output (detect + Match + encode, in process) {processor_rate:10,.0f} matches/s")
    print(f"store ingest (Store.apply, batches of {batch})         {ingest_rate:10,.0f} matches/s "
          f"-> {ingest_rate / processor_rate:.2f}x the processor")
    print(f"store ingest, last 10 % (store nearly full)        {tail_rate:10,.0f} matches/s "
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
