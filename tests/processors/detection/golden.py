"""The detector's full output on a fixed corpus, to prove that a speed-up changes no result.

The corpus is every article of the four evaluation sets and the benchmark's generated
articles (default packs), plus a slice of the benchmark articles against the default packs
with 10,000 generated extra terms. Regenerate the golden file ONLY when a result is meant to
change, and say why in the commit:

    .venv/bin/python -m tests.processors.detection.golden
"""

from __future__ import annotations

import gzip
import json
import random
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Iterator

from processors.detection import detect, load_watchlists
from tests.processors.detection.conftest import DATA, REPO, SEED_WATCHLISTS, Doc

GOLDEN = DATA / "golden" / "detect.jsonl.gz"
BENCH_ARTICLES, BENCH_SEED = 3000, 7
EXTRA_TERMS, EXTRA_ARTICLES = 10_000, 600


def _bench():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_detect", REPO / "bench" / "detect.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while being defined
    spec.loader.exec_module(module)
    return module


def outputs() -> Iterator[dict]:
    """One record per (corpus, article): the detector's whole output as plain JSON data."""
    bench = _bench()
    watchlist = load_watchlists(SEED_WATCHLISTS)
    for name in ("labelled", "heldout", "longform", "fresh"):
        rows = [json.loads(line) for line in (DATA / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()]
        for row in rows:
            doc = Doc(title=row["title"], text=row["text"], lang=row["lang"], summary=row.get("summary", ""))
            yield _record(name, row["id"], detect(doc, watchlist))
    docs = bench.make_articles(BENCH_ARTICLES, BENCH_SEED)
    for i, doc in enumerate(docs):
        yield _record("bench", i, detect(doc, watchlist))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for path in SEED_WATCHLISTS.glob("*.yaml"):
            shutil.copy(path, folder / path.name)
        shutil.copytree(SEED_WATCHLISTS / "gazetteer", folder / "gazetteer")  # the packs' slots need it
        bench.write_extra_pack(folder, EXTRA_TERMS, random.Random(BENCH_SEED))
        extra = load_watchlists(folder)
    for i, doc in enumerate(docs[:EXTRA_ARTICLES]):
        yield _record("bench+extra", i, detect(doc, extra))


def _record(corpus: str, article, hits) -> dict:
    return {"corpus": corpus, "article": article, "hits": [hit.model_dump(mode="json") for hit in hits]}


def read_golden() -> list[dict]:
    with gzip.open(GOLDEN, "rt", encoding="utf-8") as stream:
        return [json.loads(line) for line in stream]


def write_golden() -> int:
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    records = list(outputs())
    # mtime=0: the same output gives the same bytes, so an unchanged golden file shows no diff.
    with open(GOLDEN, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as stream:
        for record in records:
            stream.write((json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8"))
    return len(records)


if __name__ == "__main__":
    print(f"wrote {write_golden()} records to {GOLDEN.relative_to(REPO)}")
