"""The small faults of a new user's run (issue 15, point 16): the sink's "also:" line, `detect`
tables with long ids, `backtest` and `process` against a broker that is not there, and the build
requirement. (`up`'s "stopped" after a refusal and the compose CLUSTER_ID are tested beside the
code they belong to: tests/stack/test_up_console.py and tests/stack/test_deploy_env.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

from click.testing import CliRunner

from alerts.sink import describe
from newswatch.broker.local import free_port
from newswatch.cli import main

REPO = Path(__file__).resolve().parents[2]


def _alert(sources: list[dict]) -> dict:
    return {"type": "newswatch.alert", "reason": "first", "subscription": "local-sink", "story_id": "st-1",
            "sources_count": len(sources), "sources": sources, "topics": [],
            "article": {"id": "a1", "title": "T", "source": "RT Arabic (demo)", "lang": "ar", "url": "https://x/"}}


def test_the_sink_lists_no_other_sources_for_a_story_with_one():
    text = describe(_alert([{"article_id": "a1", "source": "RT Arabic (demo)"}]))
    assert "also:" not in text


def test_the_sink_lists_the_other_sources_once_each():
    text = describe(_alert([{"article_id": "a1", "source": "RT Arabic (demo)"},
                            {"article_id": "a2", "source": "TASS"}, {"article_id": "a3", "source": "Reuters"},
                            {"article_id": "a4", "source": "TASS"}, {"article_id": "a5", "source": "RT Arabic (demo)"}]))
    (line,) = [line for line in text.splitlines() if "source:" in line]
    assert line.endswith("· also: Reuters, TASS")


def test_detect_table_columns_line_up_whatever_the_id_length(tmp_path):
    long_id = "https://www.example-news-agency.example/2026/12/03/a-very-long-article-permalink-used-as-id"
    rows = [{"id": long_id, "lang": "en", "title": "THAAD deployed"},
            {"id": "t2", "lang": "en", "title": "Arms deal signed for S-400 systems"},
            {"id": "t3", "lang": "en", "title": "Weather"}]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    result = CliRunner().invoke(main, ["detect", "--format", "table", str(src)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    header = lines[0]
    topic_at = header.index("topic")
    rule_at = header.index("rule")
    assert topic_at > len(long_id)
    for line in lines[1:]:
        assert line[topic_at - 1] == " " and line[topic_at] != " ", line
        if not line[topic_at:].startswith(("-", "entities:")):  # a hit row (not "no topic", not the entities line)
            assert line[rule_at - 1] == " " and line[rule_at] != " ", line
    assert any(line.startswith(long_id + " ") for line in lines)


def test_backtest_says_at_once_that_no_broker_answers(monkeypatch):
    import processors.backtest as backtest

    def no_client(*args, **kwargs):
        raise AssertionError("a Kafka client was built for an address that takes no connection")

    monkeypatch.setattr(backtest, "KafkaConsumer", no_client)
    monkeypatch.setattr(backtest, "REACH_TIMEOUT_S", 0.5)
    dead = f"127.0.0.1:{free_port()}"
    result = CliRunner(env={"NEWSWATCH_KAFKA_BOOTSTRAP": dead}).invoke(
        main, ["backtest", "--watchlists", str(REPO / "seeds" / "watchlists")])
    assert result.exit_code == 1, result.output
    assert f"no Kafka broker answers at {dead}" in result.output


def test_process_against_a_dead_broker_prints_one_clear_line(tmp_path):
    env = {**os.environ, "NEWSWATCH_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}"}
    env.pop("NEWSWATCH_CONFIG", None)
    result = subprocess.run([sys.executable, "-m", "newswatch", "process", "--metrics-port", "0"],
                            capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("newswatch: error: cannot reach Kafka at ")


def test_the_build_needs_a_setuptools_that_reads_an_spdx_license():
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["license"] == "Apache-2.0"  # an SPDX expression: setuptools 77 or later
    (setuptools,) = [r for r in project["build-system"]["requires"] if r.startswith("setuptools")]
    assert setuptools.replace(" ", "") == "setuptools>=77"
