"""`newswatch check`, the alerts stage and `silence add` compare subscription and silence topics
with the loaded packs, and every commented example in the shipped files and docs is valid.

Pure: no broker, no network (the alerts stage's start-up check runs before any client exists).
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from alerts.silences import SilenceWatcher
from newswatch.cli import main
from newswatch.config import SEEDS_DIR, collect_problems, pack_topic_ids
from newswatch.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
PACKS = SEEDS_DIR / "watchlists"


def _config(tmp_path: Path, subscriptions: str) -> Path:
    (tmp_path / "newswatch.yaml").write_text(f"watchlists: {PACKS}\nsubscriptions: subs.yaml\n")
    (tmp_path / "subs.yaml").write_text(subscriptions, encoding="utf-8")
    return tmp_path / "newswatch.yaml"


SUB = "subscriptions:\n  - name: desk\n    url: https://hooks.example.org/x\n    secret_env: S\n"


def test_the_default_packs_define_the_topics_the_examples_use():
    assert {"arms_deal", "air_defense_system", "ministerial_visit"} <= pack_topic_ids(PACKS)


def test_a_subscription_topic_no_pack_defines_is_an_error_with_file_and_line(tmp_path):
    config = _config(tmp_path, SUB + "    topics: [arms_deal, s400, thaad]\n")
    found = collect_problems(config)
    assert [(p.file, p.line, p.key) for p in found] == [
        (str(tmp_path / "subs.yaml"), 5, "subscriptions.0.topics.1"),
        (str(tmp_path / "subs.yaml"), 5, "subscriptions.0.topics.2")]
    assert "'s400' is not a topic of any loaded pack" in found[0].message
    assert "arms_deal" in found[0].message  # names what is known


def test_a_silenced_topic_no_pack_defines_is_an_error(tmp_path):
    config = _config(tmp_path, SUB + "silences:\n  - matchers: {topic: s400}\n    expires_at: 2030-01-01T00:00:00Z\n")
    found = collect_problems(config)
    assert [(p.line, p.key) for p in found] == [(6, "silences.0.matchers.topic")]


def test_known_topics_pass_and_silences_match_them_case_insensitively(tmp_path):
    config = _config(tmp_path, SUB + "    topics: [arms_deal]\nsilences:\n  - matchers: {topic: Arms_Deal}\n"
                                     "    expires_at: 2030-01-01T00:00:00Z\n")
    assert collect_problems(config) == []


def test_unknown_topics_are_reported_beside_other_problems_in_the_same_file(tmp_path):
    config = _config(tmp_path, SUB + "    topics: [s400]\n    colour: red\n")
    assert sorted(p.key for p in collect_problems(config)) == ["subscriptions.0.colour", "subscriptions.0.topics.0"]


@pytest.mark.parametrize("score,ok", [(0, False), (-0.1, False), (1.5, False), (1, True), (0.01, True)])
def test_min_score_must_be_in_zero_to_one(tmp_path, score, ok):
    config = _config(tmp_path, SUB + f"    min_score: {score}\n")
    found = collect_problems(config)
    if ok:
        assert found == []
    else:
        assert [(p.line, p.key) for p in found] == [(5, "subscriptions.0.min_score")]
        assert "greater than 0 and at most 1" in found[0].message


def test_the_alerts_stage_refuses_to_start_with_an_unknown_topic(tmp_path, monkeypatch):
    from alerts.cli import load_stage

    monkeypatch.setenv("S", "whsec_c2VjcmV0LXNlY3JldA==")
    config = _config(tmp_path, SUB + "    topics: [s400]\n")
    with pytest.raises(ConfigError) as info:
        load_stage(config)
    assert f"{tmp_path / 'subs.yaml'}:5" in str(info.value) and "s400" in str(info.value)


def test_silence_add_refuses_a_topic_no_pack_defines_and_writes_nothing(tmp_path):
    config = _config(tmp_path, SUB)
    before = (tmp_path / "subs.yaml").read_text()
    result = CliRunner().invoke(main, ["alerts", "silence", "add", "--config", str(config),
                                       "--topic", "s400", "--for", "1h"])
    assert result.exit_code == 2, result.output
    assert "'s400' is not a topic of any loaded pack" in result.output
    assert (tmp_path / "subs.yaml").read_text() == before
    result = CliRunner().invoke(main, ["alerts", "silence", "add", "--config", str(config),
                                       "--topic", "arms_deal", "--for", "1h"])
    assert result.exit_code == 0, result.output
    assert "arms_deal" in (tmp_path / "subs.yaml").read_text()


def test_a_running_dispatcher_rejects_an_edited_silence_of_an_unknown_topic(tmp_path):
    _config(tmp_path, SUB)
    watcher = SilenceWatcher(tmp_path / "subs.yaml", pack_topic_ids(PACKS))
    (tmp_path / "subs.yaml").write_text(SUB + "silences:\n  - matchers: {topic: s300}\n"
                                              "    expires_at: 2030-01-01T00:00:00Z\n")
    with pytest.raises(ConfigError, match="s300"):
        watcher.poll()


# --- every example in the shipped files and docs is valid -----------------------------------------

def _commented_examples(text: str) -> list[tuple[str, int, str]]:
    """(top-level key, line, uncommented YAML) for each commented list item in a YAML file: a
    run of comment lines whose first starts with `- ` and whose others are indented under it."""
    examples = []
    lines = text.splitlines()
    section = None
    i = 0
    while i < len(lines):
        line = lines[i]
        if re.match(r"^[a-z_]+:", line):
            section = line.split(":")[0]
        body = re.sub(r"^\s*#", "", line, count=1) if line.lstrip().startswith("#") else None
        if body is not None and body.lstrip().startswith("- ") and section:
            dash = len(body) - len(body.lstrip())
            block = [body]
            while i + 1 < len(lines) and lines[i + 1].lstrip().startswith("#"):
                nxt = re.sub(r"^\s*#", "", lines[i + 1], count=1)
                if len(nxt) - len(nxt.lstrip()) <= dash:
                    break
                block.append(nxt)
                i += 1
            examples.append((section, i + 2 - len(block), textwrap.dedent("\n".join(block))))
        i += 1
    return examples


def _yaml_blocks(markdown: str) -> list[tuple[int, str]]:
    return [(markdown[:m.start()].count("\n") + 2, m.group(1))
            for m in re.finditer(r"```yaml\n(.*?)```", markdown, re.S)]


def _seed_examples():
    cases = []
    for name in ("subscriptions.yaml", "deploy-subscriptions.yaml"):
        for section, line, block in _commented_examples((SEEDS_DIR / name).read_text(encoding="utf-8")):
            cases.append(pytest.param(f"{section}:\n" + textwrap.indent(block, "  ") + "\n", id=f"{name}:{line}"))
    return cases


def _doc_examples():
    cases = []
    for name in ("docs/alerts.md", "README.md"):
        for line, block in _yaml_blocks((ROOT / name).read_text(encoding="utf-8")):
            if not re.search(r"^(subscriptions|silences):", block, re.M):
                continue
            cases.append(pytest.param(block, id=f"{name}:{line}"))
            # "topics: all   # or a list of topic ids: [a, b]": the commented alternative too
            for alternative in re.findall(r"topics: all\s+# or a list of topic ids: (\[[^\]]*\])", block):
                cases.append(pytest.param(re.sub(r"topics: all\s+#[^\n]*", f"topics: {alternative}", block),
                                          id=f"{name}:{line}:topics-alternative"))
    return cases


def test_the_examples_are_found():
    assert len(_seed_examples()) >= 6 and len(_doc_examples()) >= 3


@pytest.mark.parametrize("document", _seed_examples() + _doc_examples())
def test_every_commented_and_documented_example_passes_check(tmp_path, document):
    config = _config(tmp_path, document)
    result = CliRunner().invoke(main, ["check", str(config)])
    assert result.exit_code == 0, f"{document}\n{result.output}"
    assert result.output.startswith("ok: ")
