"""NEWSWATCH_CONFIG is honoured by every verb, and an installed package (no seeds/ beside it)
says how to name a config instead of looking for site-packages/seeds/newswatch.yaml.

Pure: the verbs tried stop at config loading or need no broker.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from newswatch import config as config_module
from newswatch.cli import main

SEEDS = Path(__file__).resolve().parents[2] / "seeds"


@pytest.fixture
def installed(monkeypatch, tmp_path):
    """As in the Docker image: the package's neighbour seeds/ folder does not exist."""
    monkeypatch.setattr(config_module, "SEEDS_DIR", tmp_path / "site-packages" / "seeds")
    monkeypatch.delenv("NEWSWATCH_CONFIG", raising=False)


def _mini_config(tmp_path: Path) -> Path:
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "newswatch.yaml").write_text(
        f"watchlists: {SEEDS / 'watchlists'}\nsubscriptions: subs.yaml\n", encoding="utf-8")
    (tmp_path / "cfg" / "subs.yaml").write_text(
        "subscriptions:\n  - name: desk\n    url: https://hooks.example.org/x\n    secret_env: S\n"
        "silences:\n  - matchers: {topic: arms_deal}\n    expires_at: 2099-01-01T00:00:00Z\n", encoding="utf-8")
    return tmp_path / "cfg" / "newswatch.yaml"


VERBS = [["check"], ["alerts", "silence", "list"], ["feeds"], ["process", "--metrics-port", "0"],
         ["ingest", "--metrics-port", "0"], ["alerts", "--metrics-port", "0"], ["up"]]


@pytest.mark.parametrize("argv", VERBS, ids=" ".join)
def test_without_a_config_every_verb_names_both_ways_to_give_one(installed, argv):
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 1, result.output
    assert "--config PATH" in result.output and "NEWSWATCH_CONFIG=PATH" in result.output, result.output
    assert "Traceback" not in result.output


def test_check_and_silence_list_read_the_config_named_by_the_environment(installed, tmp_path, monkeypatch):
    config = _mini_config(tmp_path)
    monkeypatch.setenv("NEWSWATCH_CONFIG", str(config))
    result = CliRunner().invoke(main, ["check"])
    assert result.exit_code == 0 and result.output.strip() == f"ok: {config}", result.output
    result = CliRunner().invoke(main, ["alerts", "silence", "list"])
    assert result.exit_code == 0 and "topic=arms_deal" in result.output, result.output
    monkeypatch.setenv("NEWSWATCH_CONFIG", str(config.parent))  # a folder works as for --config
    assert CliRunner().invoke(main, ["check"]).output.strip() == f"ok: {config}"


def test_an_explicit_config_wins_over_the_environment(installed, tmp_path, monkeypatch):
    config = _mini_config(tmp_path)
    monkeypatch.setenv("NEWSWATCH_CONFIG", str(tmp_path / "missing.yaml"))
    result = CliRunner().invoke(main, ["check", str(config)])
    assert result.exit_code == 0, result.output


def test_compose_points_the_cli_inside_containers_at_the_mounted_config():
    from ruamel.yaml import YAML

    compose = YAML(typ="safe").load((SEEDS.parent / "docker-compose.yml").read_text())
    env = compose["x-newswatch"]["environment"]
    assert env["NEWSWATCH_CONFIG"] == "/etc/newswatch/${NEWSWATCH_CONFIG:-deploy.yaml}"
