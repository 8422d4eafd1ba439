""".env.example agrees with the deploy files; a missing secret stops `docker compose up` loudly
(the one-shot `check` service) instead of a restart loop; silences on a read-only mount give a
clear error. Pure apart from `docker-compose config` (installed by the test extras)."""

from __future__ import annotations

import base64
import errno
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from alerts.subscriptions import Subscription, load_subscriptions
from console.settings import TOKEN_ENV
from newswatch.cli import main

REPO = Path(__file__).resolve().parents[2]
SEEDS = REPO / "seeds"
EXAMPLE = (REPO / ".env.example").read_text(encoding="utf-8")
COMPOSE_TEXT = (REPO / "docker-compose.yml").read_text(encoding="utf-8")
DEPLOY_SUBS = SEEDS / "deploy-subscriptions.yaml"
SINK_SECRET_ENV = "NEWSWATCH_SINK_SECRET"
CONSOLE_TOKEN_ENV = TOKEN_ENV  # the console refuses to start on 0.0.0.0 without it


def _compose_config() -> dict:
    tool = Path(sys.executable).parent / "docker-compose"
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")}
    result = subprocess.run([str(tool), "-f", str(REPO / "docker-compose.yml"), "--project-directory", str(REPO),
                             "config", "--format", "json"], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _example_variables() -> dict[str, bool]:
    """Each NAME= in .env.example -> whether it is set (uncommented)."""
    found = {}
    for line in EXAMPLE.splitlines():
        match = re.match(r"^(#\s*)?([A-Z][A-Z0-9_]*)=", line)
        if match:
            found[match.group(2)] = match.group(1) is None
    return found


def _deploy_env_names(include_comments: bool) -> set[str]:
    text = DEPLOY_SUBS.read_text(encoding="utf-8")
    if not include_comments:
        text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    return set(re.findall(r"(?:secret_env|url_env):\s*([A-Z][A-Z0-9_]*)", text)) | \
        set(re.findall(r"headers_env:\s*\{[^}]*?:\s*([A-Z][A-Z0-9_]*)", text))


def test_every_secret_the_deployment_needs_is_in_env_example_uncommented():
    variables = _example_variables()
    needed = _deploy_env_names(include_comments=False) | {SINK_SECRET_ENV}
    assert needed, "the deploy subscriptions name their secrets"
    for name in needed:
        assert variables.get(name) is True, f"{name} must be set (uncommented) in .env.example"


def test_every_variable_in_env_example_is_used_by_compose_or_the_deploy_subscriptions():
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", COMPOSE_TEXT)) | _deploy_env_names(include_comments=True) \
        | set(_check_service_env_names())
    for name in _example_variables():
        assert name in used, f".env.example names {name}, which neither docker-compose.yml nor {DEPLOY_SUBS.name} uses"


def test_env_example_names_real_subscriptions_files_keys_and_defaults():
    deploy_names = {s.name for s in load_subscriptions(DEPLOY_SUBS).subscriptions}
    for name in re.findall(r'subscription "([^"]+)"', EXAMPLE):
        assert name in deploy_names, f".env.example names subscription {name!r}; the deploy file has {deploy_names}"
    for path in re.findall(r"\bseeds/[\w./-]+", EXAMPLE):
        assert (REPO / path.rstrip(".")).exists(), f".env.example names {path}, which does not exist"
    for key in re.findall(r"\b(\w+_env)\b", EXAMPLE):
        assert key in Subscription.model_fields, f".env.example names {key!r}, which is no subscription key"
    (default,) = set(re.findall(r"\$\{NEWSWATCH_CONFIG:-([^}]+)\}", COMPOSE_TEXT))
    assert re.search(rf"^# NEWSWATCH_CONFIG={re.escape(default)}$", EXAMPLE, re.M)
    assert f"(default {default})" in EXAMPLE


# --- a missing secret stops the start loudly -----------------------------------------------------

def test_every_stage_waits_for_a_one_shot_check_of_config_and_secrets():
    services = _compose_config()["services"]
    check = services["check"]
    assert check["command"] == ["check", "--secrets", "--secret-env", SINK_SECRET_ENV,
                                "--require-env", CONSOLE_TOKEN_ENV]
    assert check["restart"] == "no" and not check.get("depends_on")
    assert check["environment"]["NEWSWATCH_CONFIG"] == "/etc/newswatch/deploy.yaml"
    for name in ("ingest", "process", "alerts", "sink", "console"):
        assert services[name]["depends_on"]["check"]["condition"] == "service_completed_successfully", name


def _check_service_env_names() -> list[str]:
    """The variables the compose `check` service requires (its --secret-env and --require-env)."""
    command = _compose_config()["services"]["check"]["command"]
    return [value for flag, value in zip(command, command[1:]) if flag in ("--secret-env", "--require-env")]


def _check_secrets(env: dict[str, str]):
    env = {CONSOLE_TOKEN_ENV: "a-console-token-of-some-length", **env}
    return CliRunner(env=env).invoke(main, ["check", str(SEEDS / "deploy.yaml"), "--secrets",
                                            "--secret-env", SINK_SECRET_ENV, "--require-env", CONSOLE_TOKEN_ENV])


@pytest.mark.parametrize("value", [None, ""])
def test_check_secrets_fails_without_the_console_token_and_names_it(value, monkeypatch):
    monkeypatch.delenv(CONSOLE_TOKEN_ENV, raising=False)
    secret = "whsec_" + base64.b64encode(b"0123456789abcdef0123").decode()
    env = {SINK_SECRET_ENV: secret, CONSOLE_TOKEN_ENV: value}
    result = CliRunner(env=env).invoke(main, ["check", str(SEEDS / "deploy.yaml"), "--secrets",
                                              "--secret-env", SINK_SECRET_ENV, "--require-env", CONSOLE_TOKEN_ENV])
    assert result.exit_code == 1, result.output
    assert f"environment variable {CONSOLE_TOKEN_ENV} is empty or not set (named by --require-env)" in result.output


@pytest.mark.parametrize("value", [None, ""])
def test_check_secrets_fails_on_an_empty_or_missing_secret_and_names_it(value, monkeypatch):
    monkeypatch.delenv(SINK_SECRET_ENV, raising=False)
    result = _check_secrets({SINK_SECRET_ENV: value} if value is not None else {})
    assert result.exit_code == 1, result.output
    assert f"environment variable {SINK_SECRET_ENV} is empty or not set" in result.output


def test_check_secrets_rejects_a_malformed_signing_secret_without_showing_it():
    result = _check_secrets({SINK_SECRET_ENV: "whsec_not*base64*at-all"})
    assert result.exit_code == 1 and "not base64" in result.output, result.output
    assert "not*base64*at-all" not in result.output


def test_check_secrets_passes_when_every_secret_is_set():
    secret = "whsec_" + base64.b64encode(b"0123456789abcdef0123").decode()
    result = _check_secrets({SINK_SECRET_ENV: secret})
    assert result.exit_code == 0, result.output
    assert secret not in result.output and secret[6:] not in result.output


def test_the_kafka_cluster_id_default_is_a_real_uuid():
    (cluster_id,) = re.findall(r"CLUSTER_ID: \$\{KAFKA_CLUSTER_ID:-([^}]+)\}", COMPOSE_TEXT)
    assert len(cluster_id) == 22
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


# --- silences on a read-only mount -----------------------------------------------------------------

def test_silence_add_on_a_read_only_file_says_so_and_where_to_edit(tmp_path, monkeypatch):
    (tmp_path / "newswatch.yaml").write_text(f"watchlists: {SEEDS / 'watchlists'}\nsubscriptions: subs.yaml\n")
    subs = tmp_path / "subs.yaml"
    subs.write_text("subscriptions:\n  - name: d\n    url: https://h.example/\n    secret_env: S\nsilences: []\n")
    before = subs.read_text()
    real_write = Path.write_text

    def read_only(self, *args, **kwargs):  # what a `:ro` bind mount answers (root ignores file modes)
        if self == subs:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", read_only)
    for argv in (["add", "--topic", "arms_deal", "--for", "1h"], ["remove", "--expired"]):
        result = CliRunner().invoke(main, ["alerts", "silence", *argv, "--config", str(tmp_path)])
        if argv[0] == "remove":
            assert result.exit_code == 0  # nothing expired: nothing to write
            continue
        assert result.exit_code == 1, result.output
        assert f"cannot write {subs} (Read-only file system)" in result.output
        assert "seeds/ on the host" in result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
    assert subs.read_text() == before
