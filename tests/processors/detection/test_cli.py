"""`newswatch detect`: JSON lines out, table for people, --eval report, bad lines reported with file:line."""

import json

from click.testing import CliRunner

from newswatch.cli import main
from tests.processors.detection.conftest import DATA


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def test_json_lines_output_with_evidence(tmp_path):
    src = _write(tmp_path / "in.jsonl", [
        json.dumps({"id": "a1", "lang": "en", "title": "Turkey took delivery of the S-400", "text": "", "url": "x"}),
        json.dumps({"id": "a2", "lang": "en", "title": "Weather", "text": "Sunny."}),
    ])
    result = CliRunner().invoke(main, ["detect", src])
    assert result.exit_code == 0, result.output
    first, second = [json.loads(line) for line in result.stdout.splitlines()]
    assert first["id"] == "a1"
    topics = {t["topic"]: t for t in first["topics"]}
    assert set(topics) == {"air_defense_system", "arms_deal"}
    evidence = topics["air_defense_system"]["evidence"][0]
    assert (evidence["term"], evidence["field"], evidence["start"], evidence["end"]) == ("S-400", "title", 28, 33)
    assert second == {"id": "a2", "topics": [], "entities": []}
    entities = {e["id"]: e for e in first["entities"]}
    assert {"TR", "S-400"} <= set(entities)
    assert entities["S-400"]["evidence"] == [{"term": "S-400", "field": "title", "start": 28, "end": 33}]


def test_bad_lines_are_reported_and_the_rest_processed(tmp_path):
    src = _write(tmp_path / "in.jsonl", [
        json.dumps({"id": "ok1", "lang": "en", "title": "THAAD deployed"}),
        "{not json",
        json.dumps({"lang": "en", "title": "no id"}),
        json.dumps({"id": "ok2", "lang": "en", "title": "Iron Dome"}),
    ])
    result = CliRunner().invoke(main, ["detect", src])
    assert result.exit_code == 1
    assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == ["ok1", "ok2"]
    assert f"{src}:2: not JSON" in result.stderr
    assert f"{src}:3: missing 'id'" in result.stderr


def test_table_format(tmp_path):
    src = _write(tmp_path / "in.jsonl", [json.dumps({"id": "t1", "lang": "en", "title": "THAAD deployed"})])
    result = CliRunner().invoke(main, ["detect", "--format", "table", src])
    assert result.exit_code == 0
    header, row, entities = result.stdout.splitlines()
    assert header.split() == ["id", "topic", "score", "rule", "evidence"]
    assert row.split() == ["t1", "air_defense_system", "0.90", "named_system", "THAAD"]
    assert entities.split() == ["entities:", "systems", "THAAD"]


def test_eval_prints_per_topic_per_language_f1():
    result = CliRunner().invoke(main, ["detect", "--eval", str(DATA / "labelled.jsonl")])
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    rows = {tuple(line.split()[:2]): line.split() for line in lines[1:-1]}
    for topic in ("arms_deal", "air_defense_system", "ministerial_visit", "all"):
        for lang in ("ar", "en", "ru", "all"):
            assert float(rows[(topic, lang)][-1]) >= 0.9
    assert "overall F1" in lines[-1]


def test_eval_lists_what_it_got_wrong(tmp_path):
    src = _write(tmp_path / "in.jsonl", [
        json.dumps({"id": "m1", "lang": "en", "labels": ["arms_deal"], "title": "THAAD deployed"}),
        json.dumps({"id": "m2", "lang": "en", "labels": [], "title": "Weather"}),
    ])
    result = CliRunner().invoke(main, ["detect", "--eval", src])
    assert result.exit_code == 0
    tail = result.stdout.split("2 mismatch(es):\n")[1].splitlines()
    assert [line.split()[:3] for line in tail] == [["missed", "arms_deal", "m1:"],
                                                    ["wrong", "air_defense_system", "m1:"]]


def test_bad_watchlists_and_missing_inputs_are_clear_errors(tmp_path):
    result = CliRunner().invoke(main, ["detect", "--watchlists", str(DATA / "bad" / "unknown-key.yaml"), "x.jsonl"])
    assert result.exit_code == 1
    assert "unknown-key.yaml:4:5: topics.0.severty: unknown key" in result.stderr
    result = CliRunner().invoke(main, ["detect", str(tmp_path / "missing.jsonl")])
    assert result.exit_code == 1 and "no such file" in result.stderr


def _seed_feed(tmp_path) -> str:
    """An RSS 2.0 file whose one item is the seed article, plus a plain negative."""
    from xml.sax.saxutils import escape

    from tests.processors.detection.test_seed_packs import SEED_ARTICLE

    seed = SEED_ARTICLE.read_text(encoding="utf-8")
    items = [("seed", "وزيرا الخارجية والدفاع المصريان في موسكو", seed),
             ("calm", "Weather service expects a sunny weekend", "Light winds and no rain until Monday.")]
    body = "".join(f"<item><guid>{guid}</guid><title>{escape(title)}</title>"
                   f"<description>{escape(text)}</description></item>" for guid, title, text in items)
    path = tmp_path / "feed.xml"
    path.write_text(f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Demo</title>'
                    f'<language>ar</language>{body}</channel></rss>', encoding="utf-8")
    return str(path)


def test_feed_files_are_read_as_ingest_would(tmp_path):
    result = CliRunner().invoke(main, ["detect", _seed_feed(tmp_path)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 2
    seed, calm = sorted(lines, key=lambda line: -len(line["topics"]))
    assert {t["topic"] for t in seed["topics"]} == {"arms_deal", "air_defense_system", "ministerial_visit"}
    assert calm["topics"] == []


def test_feed_urls_are_fetched_with_the_address_guard(tmp_path):
    import http.server
    import threading
    from pathlib import Path

    content = Path(_seed_feed(tmp_path)).read_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml")
            self.end_headers()
            self.wfile.write(content)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/feed.xml"
    try:
        refused = CliRunner().invoke(main, ["detect", url])
        assert refused.exit_code == 1
        assert "loopback address" in refused.stderr
        allowed = CliRunner().invoke(main, ["detect", "--allow-private-networks", url])
        assert allowed.exit_code == 0, allowed.output
        topics = [json.loads(line)["topics"] for line in allowed.stdout.splitlines()]
        assert sorted(len(t) for t in topics) == [0, 3]
    finally:
        server.shutdown()


def test_a_plain_text_file_is_one_article(tmp_path):
    # The seed article as it was delivered: a text file, no JSON. Its name is the id and its
    # language comes from its script.
    from tests.processors.detection.conftest import REPO

    seed = REPO / "seeds" / "articles" / "rt-arabic-egypt-russia-2plus2.txt"
    result = CliRunner().invoke(main, ["detect", "--format", "table", str(seed)])
    assert result.exit_code == 0, result.output
    rows = result.stdout.splitlines()[1:]
    entities = rows.pop()
    assert {row.split()[1] for row in rows} == {"arms_deal", "air_defense_system", "ministerial_visit"}
    assert all(row.startswith("rt-arabic-egypt-russia-2plus2.txt") for row in rows)
    # the file has no date, so persons carry their latest office
    assert entities.split()[:4] == ["entities:", "countries", "EG,", "RU,"] and "systems S-300, S-400" in entities
    english = tmp_path / "note.txt"
    english.write_text("Weather\n\nSunny all week.\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["detect", str(english)])
    assert result.exit_code == 0 and json.loads(result.stdout) == {"id": "note.txt", "topics": [], "entities": []}


def test_eval_reports_entity_precision_and_recall_per_type_and_language():
    result = CliRunner().invoke(main, ["detect", "--eval", str(DATA / "entities.jsonl")])
    assert result.exit_code == 0, result.stderr
    rows = {tuple(line.split()[:2]): line.split() for line in result.stdout.splitlines()
            if line.split()[:1] and line.split()[0] in ("country", "system", "party")}
    for kind in ("country", "system", "party"):
        for lang in ("ar", "en", "ru", "all"):
            precision = float(rows[(kind, lang)][5])
            assert precision >= 0.9, (kind, lang, rows[(kind, lang)])
