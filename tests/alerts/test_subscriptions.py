"""The subscriptions file: good and bad examples under tests/data/alerts/, secrets from the environment.

Each bad file's first line says what must be reported: `# expect: LINE:COL KEY MESSAGE`.
"""

from pathlib import Path

import pytest

from alerts.subscriptions import load_subscriptions, problems, resolve_endpoint
from newswatch.config import SEEDS_DIR, collect_problems
from newswatch.errors import ConfigError
from newswatch.secrets import MissingSecretError

DATA = Path(__file__).parent.parent / "data" / "alerts"


@pytest.mark.parametrize("path", sorted((DATA / "good").glob("*.yaml")) + [SEEDS_DIR / "subscriptions.yaml"],
                         ids=lambda p: p.name)
def test_good_files_load(path):
    parsed = load_subscriptions(path)
    assert parsed.subscriptions, "every good example has at least one subscription"
    assert problems(path) == []


@pytest.mark.parametrize("path", sorted((DATA / "bad").glob("*.yaml")), ids=lambda p: p.name)
def test_bad_files_name_file_line_column_and_key(path):
    position, key, message = path.read_text().splitlines()[0].removeprefix("# expect: ").split(" ", 2)
    line, column = (int(n) for n in position.split(":"))
    with pytest.raises(ConfigError) as info:
        load_subscriptions(path)
    found = [(p.line, p.column, p.key) for p in info.value.problems]
    assert (line, column, key) in found, str(info.value)
    assert any(message in p.message for p in info.value.problems), str(info.value)
    assert str(info.value).startswith(f"{path}:")


def test_full_example_keeps_every_setting():
    sub = {s.name: s for s in load_subscriptions(DATA / "good" / "full.yaml").subscriptions}["slack-desk"]
    assert sub.format == "slack" and sub.url_env == "NW_TEST_SLACK_URL"
    assert sub.topics == ("s400", "patriot") and sub.languages == ("ar", "ru")
    assert sub.min_severity == "high" and sub.throttle.max_per_hour == 5
    assert (sub.grouping.wait, sub.grouping.interval) == (30.0, 600.0)


def test_check_command_validates_the_subscriptions_file(tmp_path):
    (tmp_path / "newswatch.yaml").write_text("subscriptions: subs.yaml\n")
    (tmp_path / "subs.yaml").write_text("subscriptions:\n  - name: x\n    url: http://h/\n    secret_env: S\n"
                                        "    colour: red\n")
    found = collect_problems(tmp_path)
    assert [(p.line, p.key, p.message) for p in found] == [(5, "subscriptions.0.colour", "unknown key")]


def test_endpoint_secrets_come_from_the_environment_and_never_show():
    sub = {s.name: s for s in load_subscriptions(DATA / "good" / "full.yaml").subscriptions}["n8n"]
    env = {"NW_TEST_SECRET": "whsec_c2VjcmV0LXNlY3JldA==", "NW_TEST_API_KEY": "key-123"}
    endpoint = resolve_endpoint(sub, env)
    assert endpoint.secret.reveal() == env["NW_TEST_SECRET"]
    assert endpoint.headers["X-Api-Key"].reveal() == "key-123"
    assert "key-123" not in repr(endpoint) and "c2Vj" not in repr(endpoint)
    with pytest.raises(MissingSecretError, match="NW_TEST_API_KEY") as info:
        resolve_endpoint(sub, {"NW_TEST_SECRET": "s"})
    assert "whsec" not in str(info.value)
