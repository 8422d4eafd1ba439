"""End to end with a teaser feed: `newswatch up` on the session's real broker, the demo server
serving a summary-only feed and, beside it, the article's page (the seed story inside an Arabic
news site's boilerplate: menu, related links, share buttons, comments, cookie banner).

The feed carries the seed story as its title and first sentence only. With `full_text: auto`
ingest fetches the page, and the alert reaching the sink carries all three topics, with
evidence whose offsets point into the page's text. The same feed with `full_text: never` raises
only the visit. The two runs go side by side (own ports, own topics, own state).
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from ruamel.yaml import YAML

from ingest.extract import extract_page
from newswatch.broker import local
from newswatch.kafka_settings import BOOTSTRAP_ENV
from tests.support.pages import render_page
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SEEDS = REPO / "seeds"
SEED_LINES = [line.strip() for line in (SEEDS / "articles" / "rt-arabic-egypt-russia-2plus2.txt")
              .read_text(encoding="utf-8").splitlines() if line.strip()]
SEED = next(e for e in json.loads((SEEDS / "demo-feeds" / "expected.json").read_text(encoding="utf-8"))["entries"]
            if e.get("seed"))
TEASER = SEED_LINES[0]  # the first sentence, as a summary-only feed carries it
ALL_TOPICS = {"arms_deal", "air_defense_system", "ministerial_visit"}


def _page_html() -> str:
    return render_page({"lang": "ar", "title": SEED["title"], "paragraphs": SEED_LINES}, "agency")


def _write_yaml(path: Path, data) -> None:
    yaml = YAML()
    yaml.default_flow_style = False
    with path.open("w", encoding="utf-8") as handle:
        yaml.dump(data, handle)


def _build(root: Path, mode: str, bootstrap: str, prefix: str) -> tuple[Path, Path]:
    names = ("demo", "sink", "ingest", "process", "alerts", "console")
    ports: dict[str, int] = {}
    while len(set(ports.values())) < len(names):
        ports = {name: local.free_port() for name in names}
    config = root / "config"
    demo = config / "demo"
    demo.mkdir(parents=True)
    (demo / "seed-page.html").write_text(_page_html(), encoding="utf-8")
    link = f"http://127.0.0.1:{ports['demo']}/seed-page.html"
    (demo / "teasers.xml").write_text(
        "<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>RT Arabic (teasers)</title>"
        "<link>https://arabic.demo.newswatch.example/</link><language>ar</language>"
        f"<item><title>{escape(SEED['title'])}</title><link>{link}</link><guid isPermaLink='false'>seed-{mode}</guid>"
        f"<pubDate>Wed, 12 Feb 2014 09:00:00 GMT</pubDate><description>{escape(TEASER)}</description></item>"
        "</channel></rss>", encoding="utf-8")
    _write_yaml(config / "feeds.yaml", {"feeds": [
        {"url": f"http://127.0.0.1:{ports['demo']}/teasers.xml", "name": "RT Arabic (teasers)", "interval": 2,
         "full_text": mode}]})
    _write_yaml(config / "subscriptions.yaml", {"subscriptions": [
        {"name": "local-sink", "url": f"http://127.0.0.1:{ports['sink']}/", "secret_env": "NEWSWATCH_SINK_SECRET",
         "format": "json", "topics": "all", "grouping": {"wait": "0s", "interval": "5m"}}], "silences": []})
    top = YAML(typ="safe").load((SEEDS / "newswatch.yaml").read_text(encoding="utf-8"))
    top["kafka"] = {"topic_prefix": prefix, "bootstrap_servers": bootstrap}
    top["watchlists"] = str(SEEDS / "watchlists")
    top["ingest"].update(interval_floor_s=1, interval_ceiling_s=2)
    top["up"] = {"demo_feeds": {"dir": "demo", "port": ports["demo"]}, "sink": {"port": ports["sink"]},
                 "metrics_ports": {"ingest": ports["ingest"], "process": ports["process"], "alerts": ports["alerts"]}}
    top["console"] = {"port": ports["console"]}
    _write_yaml(config / "newswatch.yaml", top)
    return config / "newswatch.yaml", root / "run"


def _sink_alerts(run_dir: Path) -> list[dict]:
    path = run_dir / "alerts.jsonl"
    if not path.exists():
        return []
    bodies = [json.loads(line)["body"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [body for body in bodies if body.get("type") == "newswatch.alert"]


def _logs(run_dir: Path) -> str:
    parts = []
    for log in sorted((run_dir / "logs").glob("*.log")):
        parts += [f"--- {log.name} ---", "\n".join(log.read_text(errors="replace").splitlines()[-20:])]
    return "\n".join(parts)


def test_a_teaser_feed_alerts_with_the_page_text_and_without_it_only_the_visit(tmp_path, kafka_bootstrap,
                                                                              topic_prefix):
    runs = {}
    env = {key: value for key, value in os.environ.items() if key != BOOTSTRAP_ENV}
    env["NEWSWATCH_SINK_SECRET"] = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    for mode in ("auto", "never"):
        config_file, run_dir = _build(tmp_path / mode, mode, kafka_bootstrap, f"{topic_prefix}{mode}.")
        out = (tmp_path / f"{mode}.out").open("wb")
        up = subprocess.Popen([sys.executable, "-m", "newswatch", "up", "--config", str(config_file),
                               "--run-dir", str(run_dir)], cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
                              stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        runs[mode] = (up, run_dir, out)
    try:
        def alerted(mode):
            up, run_dir, _ = runs[mode]
            if up.poll() is not None:
                raise AssertionError(f"newswatch up ({mode}) exited with {up.returncode}\n{_logs(run_dir)}")
            return _sink_alerts(run_dir)

        try:
            [auto] = wait_until(lambda: alerted("auto"), timeout=240, message="the sink receiving the page's alert")
            [never] = wait_until(lambda: alerted("never"), timeout=120, message="the sink receiving the teaser's alert")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{_logs(runs['auto'][1])}\n{_logs(runs['never'][1])}") from None

        page_text = extract_page(_page_html().encode(), "http://127.0.0.1/seed-page.html",
                                 content_type="text/html; charset=utf-8").text
        assert {t["topic"] for t in auto["topics"]} == ALL_TOPICS, auto["topics"]
        assert auto["article"]["url"].endswith("/seed-page.html")
        beyond_teaser = []
        for topic in auto["topics"]:
            assert topic["evidence"], topic
            for evidence in topic["evidence"]:
                if evidence["field"] != "text":
                    continue
                found = page_text[evidence["start"]:evidence["end"]]
                assert found and found in evidence["snippet"].replace("…", ""), (evidence, found)
                if evidence["start"] > len(TEASER):
                    beyond_teaser.append(topic["topic"])
        # The arms deal and the S-300/S-400 are paragraphs into the page, far past the teaser.
        assert {"arms_deal", "air_defense_system"} <= set(beyond_teaser), auto["topics"]
        # Boilerplate stayed out: the related-links sidebar names باتريوت (Patriot), the story does not.
        assert not any("باتريوت" in e["snippet"] for t in auto["topics"] for e in t["evidence"])

        assert {t["topic"] for t in never["topics"]} == {"ministerial_visit"}, never["topics"]
    finally:
        for mode, (up, run_dir, out) in runs.items():
            if up.poll() is None:
                up.send_signal(signal.SIGINT)
        for mode, (up, run_dir, out) in runs.items():
            try:
                up.wait(timeout=90)
            except subprocess.TimeoutExpired:
                os.killpg(up.pid, signal.SIGKILL)
            out.close()
    ingest_log = (runs["auto"][1] / "logs" / "ingest.log").read_text(errors="replace")
    assert "page_not_used" not in ingest_log, ingest_log[-2000:]
