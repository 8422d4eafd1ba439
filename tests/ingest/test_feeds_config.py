import pytest

from newswatch.config import collect_problems
from newswatch.errors import ConfigError

from ingest.feeds_config import DEFAULT_INTERVAL_S, load_feeds, load_feeds_text, problems


def test_good_file_gets_defaults():
    feeds = load_feeds_text("feeds:\n  - url: https://example.org/rss\n  - url: http://b.example/atom\n"
                            "    name: B\n    lang: AR-eg\n    interval: 120\n    tags: [x, y]\n    enabled: false\n")
    first, second = feeds.feeds
    assert (first.interval, first.lang, first.enabled, first.display_name) == (DEFAULT_INTERVAL_S, None, True,
                                                                             "example.org")
    assert (second.name, second.lang, second.interval, second.tags) == ("B", "ar", 120, ("x", "y"))
    assert feeds.enabled == (first,)
    assert first.full_text == "auto"  # teaser entries get their page by default


@pytest.mark.parametrize("text, line, needle", [
    ("feeds:\n  - url: https://a.example/\n    colour: red\n", 3, "unknown key"),
    ("feeds:\n  - url: ftp://a.example/feed\n", 2, "only http and https"),
    ("feeds:\n  - url: /etc/passwd\n", 2, "only http and https"),
    ("feeds:\n  - url: https://a.example/\n    interval: -5\n", 3, "greater than 0"),
    ("feeds:\n  - url: https://a.example/\n    lang: english please\n", 3, "not a language tag"),
    ("feeds:\n  - name: nameless\n", 2, "required key is missing"),
    ("feeds:\n  - url: https://a.example/\n    full_text: sometimes\n", 3, "'auto', 'always' or 'never'"),
    ("feeds:\n  - url: https://a.example/\n  - url: https://b.example/\n  - url: https://a.example/\n", 4,
     "already listed (line 2)"),
    ("feeds:\n  - url: [unclosed\n", 3, "invalid YAML"),
])
def test_bad_files_name_the_line(text, line, needle):
    with pytest.raises(ConfigError) as caught:
        load_feeds_text(text, "feeds.yaml")
    problem = caught.value.problems[0]
    assert problem.file == "feeds.yaml" and problem.line == line, str(caught.value)
    assert needle in str(problem)


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as caught:
        load_feeds_text("feeds:\n  - url: ftp://a/\n  - url: https://b.example/\n    interval: zero\n", "f.yaml")
    assert [p.line for p in caught.value.problems] == [2, 4]


def test_newswatch_check_validates_the_feeds_file(tmp_path):
    (tmp_path / "newswatch.yaml").write_text("feeds: feeds.yaml\ningest:\n  per_host: 4\n")
    (tmp_path / "feeds.yaml").write_text("feeds:\n  - url: https://ok.example/\n  - url: gopher://x/\n")
    found = collect_problems(tmp_path)
    assert len(found) == 1 and found[0].line == 3 and found[0].file.endswith("feeds.yaml")
    assert problems(tmp_path / "missing.yaml")[0].message == "file not found"


def test_ingest_settings_are_strict(tmp_path):
    (tmp_path / "newswatch.yaml").write_text("ingest:\n  per_hots: 4\n")
    found = collect_problems(tmp_path)
    assert [(p.line, p.key, p.message) for p in found] == [(2, "ingest.per_hots", "unknown key")]
    (tmp_path / "newswatch.yaml").write_text("ingest:\n  interval_floor_s: 900\n  interval_ceiling_s: 60\n")
    found = collect_problems(tmp_path)
    assert len(found) == 1 and found[0].line == 3 and "interval_floor_s (900) is above" in found[0].message


def test_seed_feeds_file_is_valid():
    from newswatch.config import SEEDS_DIR
    feeds = load_feeds(SEEDS_DIR / "feeds.yaml")
    assert len(feeds.enabled) >= 3
    assert {feed.lang for feed in feeds.feeds} >= {"ar", "en", "ru"}
