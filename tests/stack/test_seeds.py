"""The shipped configuration tells a consistent story: every seed file validates, the demo feeds
point at the demo server `up` runs, the sink subscription at the sink it runs, and the default
packs find exactly what expected.json says in the demo feeds (pure: no broker, no network)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from alerts.subscriptions import load_subscriptions
from ingest.feeds_config import load_feeds
from ingest.parse import parse_feed
from newswatch.config import collect_problems, load_config
from newswatch.stack.plan import run_config
from newswatch.yamlconf import parse_yaml
from processors.detection import detect, load_watchlists

SEEDS = Path(__file__).resolve().parents[2] / "seeds"
DEMO = SEEDS / "demo-feeds"
EXPECTED = json.loads((DEMO / "expected.json").read_text(encoding="utf-8"))["entries"]
SEED_TEXT = SEEDS / "articles" / "rt-arabic-egypt-russia-2plus2.txt"  # the article the project started from
TOPICS = {"arms_deal", "air_defense_system", "ministerial_visit"}


@pytest.mark.parametrize("name", ["newswatch.yaml", "deploy.yaml"])
def test_every_seed_config_validates(name):
    assert collect_problems(SEEDS / name) == []


def test_demo_feeds_and_sink_subscription_match_what_up_serves():
    config = load_config(SEEDS / "newswatch.yaml")
    feeds = load_feeds(config.resolve(config.feeds)).feeds
    demo = config.up.demo_feeds
    # The file keeps the address guard on; `up` opens it for its own run, towards the demo server.
    assert demo is not None and not config.ingest.allow_private_networks
    assert run_config(parse_yaml((SEEDS / "newswatch.yaml").read_text(), "seeds")[0], config)["ingest"][
        "allow_networks"] == ["127.0.0.1/32"]
    for feed in feeds:
        prefix = f"http://127.0.0.1:{demo.port}/"
        assert feed.url.startswith(prefix) and (config.resolve(demo.dir) / feed.url[len(prefix):]).is_file()
    assert {f.url.rsplit("/", 1)[1] for f in feeds} == {p.name for p in DEMO.glob("*.xml")}
    subscriptions = load_subscriptions(config.resolve(config.subscriptions)).subscriptions
    sink = [s for s in subscriptions if s.url == f"http://127.0.0.1:{config.up.sink.port}/"]
    assert sink and sink[0].secret_env == config.up.sink.secret_env
    assert config.alerts.allow_networks == ("127.0.0.1/32",) and not config.alerts.allow_private_networks


def test_deploy_config_sends_to_the_compose_sink_and_keeps_state_in_the_volume():
    config = load_config(SEEDS / "deploy.yaml")
    assert config.up.demo_feeds is None and config.ingest.state_dir == Path("/var/lib/newswatch/ingest")
    urls = [s.url for s in load_subscriptions(config.resolve(config.subscriptions)).subscriptions]
    assert "http://sink:8787/" in urls


def test_real_feeds_cover_arabic_english_russian_news_defence_and_ministries():
    feeds = load_feeds(SEEDS / "real-feeds.yaml").feeds
    assert {f.lang for f in feeds} == {"ar", "en", "ru"}
    assert all(f.url.startswith(("https://", "http://")) and "127.0.0.1" not in f.url for f in feeds)
    tags = {tag for f in feeds for tag in f.tags}
    assert {"world", "defence", "ministry"} <= tags
    for lang in ("ar", "en", "ru"):
        assert sum(f.lang == lang for f in feeds) >= 5, lang


def _demo_articles():
    fetched = datetime(2026, 11, 29, tzinfo=timezone.utc)
    for path in sorted(DEMO.glob("*.xml")):
        yield from parse_feed(path.read_bytes(), f"http://127.0.0.1:8788/{path.name}", fetched_at=fetched).articles


def test_expected_json_lists_every_demo_entry_once_with_positives_for_each_topic_and_language():
    articles = list(_demo_articles())
    assert sorted(a.url for a in articles) == sorted(e["url"] for e in EXPECTED)
    covered = {(topic, e["lang"]) for e in EXPECTED for topic in e["topics"]}
    assert covered == {(topic, lang) for topic in TOPICS for lang in ("ar", "en", "ru")}
    assert sum(1 for e in EXPECTED if not e["topics"]) >= 8
    assert all(e.get("negative_because") for e in EXPECTED if not e["topics"])


def test_the_seed_article_is_in_the_arabic_feed_verbatim():
    seed = next(e for e in EXPECTED if e.get("seed"))
    article = next(a for a in _demo_articles() if a.url == seed["url"])
    assert seed["feed"] == "rt-arabic.xml" and article.lang == "ar"
    lines = [line.strip() for line in SEED_TEXT.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(lines) > 3
    for line in lines:
        assert line in article.text


def test_default_packs_find_exactly_what_expected_json_says():
    watchlist = load_watchlists(SEEDS / "watchlists")
    expected = {e["url"]: set(e["topics"]) for e in EXPECTED}
    wrong = {a.title: (sorted(h.topic for h in detect(a, watchlist)), sorted(expected[a.url]))
             for a in _demo_articles() if {h.topic for h in detect(a, watchlist)} != expected[a.url]}
    assert not wrong, f"(found, expected) per title: {wrong}"
