"""Benchmark: main-text extraction on the test pages (tests/data/pages), trafilatura against
readability-lxml, same pages, same run.

For each page: the share of the story's sentences (title excluded) found in the extracted
text, and the topics the extracted text raises that the story itself does not (boilerplate
terms leaking through: "related: S-400 deal" in a sidebar). Prints one row per page and a
summary per extractor (and, as a control that the measure bites, the whole page's text with
no extraction), plus the CPU per page of each (ratio trafilatura / readability).

    .venv/bin/python bench/extract_quality.py [--rows]
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ingest.extract import extract_page  # noqa: E402
from ingest.parse import html_to_text  # noqa: E402
from processors.detection.engine import detect  # noqa: E402
from processors.detection.watchlist import load_watchlists  # noqa: E402
from newswatch.schemas import Article, FeedRef  # noqa: E402
from tests.support.pages import pages  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
_SENTENCE_END = re.compile(r"(?<=[.!?؟])\s+")


def sentences(paragraphs: list[str]) -> list[str]:
    return [s.strip() for p in paragraphs for s in _SENTENCE_END.split(p) if s.strip()]


def squash(text: str) -> str:
    return " ".join(text.split())


def topics_of(watchlist, article: dict, text: str) -> set[str]:
    from datetime import datetime, timezone
    record = Article(id=article["id"], title=article["title"], text=text, lang=article["lang"],
                     fetched_at=datetime(2026, 1, 1, tzinfo=timezone.utc), feed=FeedRef(url="http://x/"))
    return {hit.topic for hit in detect(record, watchlist)}


def trafilatura_text(html: str) -> str:
    return extract_page(html.encode("utf-8"), "https://news.example.org/story", content_type="text/html").text


def readability_text(html: str) -> str:
    from readability import Document
    return html_to_text(Document(html).summary(html_partial=True))


def evaluate(watchlist, extractor) -> tuple[list[dict], float]:
    rows = []
    cpu = 0.0
    for article, layout, html in pages():
        began = time.process_time()
        try:
            text = extractor(html)
        except Exception as exc:  # a miss counts as nothing kept
            text = f"<{type(exc).__name__}>"
        cpu += time.process_time() - began
        flat = squash(text)
        wanted = sentences(article["paragraphs"])
        kept = sum(squash(s) in flat for s in wanted)
        baseline = topics_of(watchlist, article, "\n".join(article["paragraphs"]))
        raised = topics_of(watchlist, article, text)
        rows.append({"id": article["id"], "lang": article["lang"], "layout": layout, "kept": kept,
                     "sentences": len(wanted), "false": sorted(raised - baseline), "lost": sorted(baseline - raised)})
    return rows, cpu / max(1, len(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", action="store_true", help="print one row per page")
    args = parser.parse_args()
    watchlist = load_watchlists(REPO / "seeds" / "watchlists")
    results = {}
    extractors = (("trafilatura", trafilatura_text), ("readability-lxml", readability_text),
                  ("whole page (control)", lambda html: html_to_text(html)))
    for name, extractor in extractors:
        rows, cpu = evaluate(watchlist, extractor)
        results[name] = (rows, cpu)
        if args.rows:
            print(f"\n{name}\n{'page':22} {'lang':4} {'layout':7} {'kept':>7}  false topics")
            for row in rows:
                print(f"{row['id']:22} {row['lang']:4} {row['layout']:7} {row['kept']:>3}/{row['sentences']:<3}  "
                      f"{', '.join(row['false']) or '-'}")
    print(f"\n{'extractor':21} {'pages':>5} {'sentences kept':>15} {'pages <95%':>10} {'false topics':>12} "
          f"{'lost topics':>11} {'CPU/page':>9}")
    for name, (rows, cpu) in results.items():
        kept = sum(r["kept"] for r in rows)
        total = sum(r["sentences"] for r in rows)
        short = sum(r["kept"] < 0.95 * r["sentences"] for r in rows)
        false = sum(len(r["false"]) for r in rows)
        lost = sum(len(r["lost"]) for r in rows)
        print(f"{name:21} {len(rows):>5} {kept:>7}/{total:<4} {kept / total:>4.0%} {short:>10} {false:>12} "
              f"{lost:>11} {cpu * 1000:>7.1f}ms")
        for lang in ("ar", "en", "ru"):
            part = [r for r in rows if r["lang"] == lang]
            k, t = sum(r["kept"] for r in part), sum(r["sentences"] for r in part)
            print(f"  {lang:19} {len(part):>5} {k:>7}/{t:<4} {k / t:>4.0%} "
                  f"{sum(r['kept'] < 0.95 * r['sentences'] for r in part):>10} "
                  f"{sum(len(r['false']) for r in part):>12} {sum(len(r['lost']) for r in part):>11}")
    ratio = results["trafilatura"][1] / max(results["readability-lxml"][1], 1e-9)
    print(f"\nCPU per page: trafilatura / readability-lxml = {ratio:.2f}")


if __name__ == "__main__":
    main()
