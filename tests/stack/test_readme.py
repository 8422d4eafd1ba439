"""The README's YAML examples are real: each loads with the stage's own strict loader, and the
run command it names is what scripts/run.sh runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from alerts.subscriptions import load_subscriptions_text
from ingest.feeds_config import load_feeds_text
from newswatch.config import AppConfig
from newswatch.yamlconf import load_text
from processors.detection import detect, load_watchlists

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```yaml\n(.*?)```", README, re.S)


def _block(top_key: str) -> str:
    """The one yaml example whose top level has `top_key`."""
    found = [block for block in BLOCKS if re.search(rf"^{top_key}:", block, re.M)]
    assert len(found) == 1, f"README: expected one yaml example with a top-level {top_key!r}"
    return found[0]


def test_the_two_setup_commands_come_first_and_run_sh_ends_in_newswatch_up():
    first = re.search(r"```sh\n(.*?)```", README, re.S).group(1).splitlines()
    assert [line.split()[0] for line in first] == ["./scripts/run.sh", "./scripts/test.sh"]
    run = (REPO / "scripts" / "run.sh").read_text().strip().splitlines()
    assert run[-1] == 'exec .venv/bin/newswatch up "$@"'


def test_feed_example_loads():
    assert load_feeds_text(_block("feeds")).feeds[0].lang == "en"


def test_subscription_example_loads():
    subscription = load_subscriptions_text(_block("subscriptions")).subscriptions[0]
    assert subscription.secret_env == "ARABIC_DESK_SECRET" and subscription.throttle.max_per_hour == 30


def test_up_section_example_loads():
    assert load_text(_block("up"), AppConfig).up.demo_feeds.port == 8788


def test_watchlist_example_loads_and_finds_the_added_term(tmp_path):
    from datetime import datetime, timezone

    from newswatch.schemas import Article, FeedRef

    (tmp_path / "pack.yaml").write_text(_block("topics"), encoding="utf-8")
    watchlist = load_watchlists(tmp_path)
    article = Article(id="1", title="Taipei deploys more Tien Kung batteries", text="", lang="en",
                      fetched_at=datetime.now(timezone.utc), feed=FeedRef(url="https://x.example/"))
    assert [hit.topic for hit in detect(article, watchlist)] == ["air_defense_system"]


@pytest.mark.parametrize("doc", ["ingest", "detection", "processors", "alerts"])
def test_readme_links_each_stage_doc(doc):
    assert f"(docs/{doc}.md)" in README
