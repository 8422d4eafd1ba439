"""Measure: the language ingest gives the articles of a folder of captured real feeds, against
the script of each article's text, with no language hint from the config (as a new user's feed).

For every article whose title and text are at least 80% one script (20 letters at least), the
language must not be null; the script prints, per feed, how many such articles came out null
and the languages given. (Run it from an older checkout for the figures before.)

    .venv/bin/python bench/realfeeds_lang.py DIR   # DIR holds MANIFEST.jsonl and the feed files
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ingest.parse import FeedRefused, dominant_script, parse_feed  # noqa: E402

NOW = datetime(2026, 12, 1, tzinfo=timezone.utc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    args = parser.parse_args()
    manifest = [json.loads(line) for line in (args.folder / "MANIFEST.jsonl").read_text().splitlines() if line.strip()]
    totals = Counter()
    print(f"{'feed':55} {'arts':>4} {'1-script':>8} {'null':>4}  languages")
    for item in manifest:
        content = (args.folder / item["file"]).read_bytes()
        try:
            articles = parse_feed(content, f"https://feeds.example.org/{item['file']}", fetched_at=NOW).articles
        except FeedRefused as exc:
            print(f"{item['file'][:55]:55} refused: {exc.reason}")
            continue
        one_script = [a for a in articles if dominant_script(f"{a.title} {a.text}")]
        nulls = [a for a in one_script if a.lang is None]
        langs = Counter(a.lang for a in one_script)
        scripts = Counter(dominant_script(f"{a.title} {a.text}") for a in nulls)
        totals.update(articles=len(articles), one_script=len(one_script), null=len(nulls))
        for script, count in scripts.items():
            totals[f"null_{script}"] += count
        print(f"{item['file'][:55]:55} {len(articles):>4} {len(one_script):>8} {len(nulls):>4}  "
              f"{dict(langs)}" + (f"  null by script {dict(scripts)}" if nulls else ""))
    print(f"\n{len(manifest)} feeds, {totals['articles']} articles, {totals['one_script']} at least 80% one script, "
          f"{totals['null']} of them with a null language "
          f"(Latin {totals['null_latin']}, Cyrillic {totals['null_cyrillic']}, Arabic {totals['null_arabic']})")


if __name__ == "__main__":
    main()
