"""docker-compose.yml and the Dockerfile, checked with the real Compose v2 binary and hadolint.

There is no Docker engine here: `docker-compose config` validates and resolves the file
without one. A missing binary fails these tests (it is in the test extras), never skips them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from newswatch.broker.artifacts import KAFKA_VERSION
from newswatch.config import load_config
from newswatch.stack.plan import plan_children
from newswatch.stack.settings import UpSettings

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
NEWSWATCH_SERVICES = ("ingest", "process", "alerts", "sink")


def _tool(name: str) -> str:
    """The tool next to this interpreter (the venv), else on PATH; a missing tool fails the test."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} not found: install the test extras (pip install -e '.[test]')", pytrace=False)
    return found


def _compose(*args: str, **variables: str) -> subprocess.CompletedProcess:
    # A clean environment: no .env values or COMPOSE_* settings of the person running the tests leak in.
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"), **variables}
    return subprocess.run([_tool("docker-compose"), "-f", str(COMPOSE_FILE), "--project-directory", str(REPO),
                           *args], capture_output=True, text=True, env=env, timeout=60)


@pytest.fixture(scope="module")
def compose() -> dict:
    result = _compose("config", "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_compose_config_is_valid():
    result = _compose("config", "-q")
    assert result.returncode == 0, f"docker-compose config -q failed:\n{result.stderr}"
    assert result.stderr.strip() == "", f"warnings from docker-compose:\n{result.stderr}"


def test_processors_scale_out_by_replicas_one_by_default(compose):
    assert compose["services"]["process"]["deploy"]["replicas"] == 1
    assert "ports" not in compose["services"]["process"], "replicas would clash on a published port"
    scaled = _compose("config", "--format", "json", NEWSWATCH_PROCESS_REPLICAS="3")
    assert scaled.returncode == 0, scaled.stderr
    assert json.loads(scaled.stdout)["services"]["process"]["deploy"]["replicas"] == 3


def test_ingest_scales_out_by_replicas_one_by_default_in_shared_mode(compose):
    assert compose["services"]["ingest"]["deploy"]["replicas"] == 1
    assert "ports" not in compose["services"]["ingest"], "replicas would clash on a published port"
    scaled = _compose("config", "--format", "json", NEWSWATCH_INGEST_REPLICAS="3")
    assert scaled.returncode == 0, scaled.stderr
    assert json.loads(scaled.stdout)["services"]["ingest"]["deploy"]["replicas"] == 3
    assert load_config(REPO / "seeds" / "deploy.yaml").ingest.shared  # replicas share, never poll twice


def test_alerts_scale_out_by_replicas_one_by_default(compose):
    assert compose["services"]["alerts"]["deploy"]["replicas"] == 1
    assert "ports" not in compose["services"]["alerts"], "replicas would clash on a published port"
    scaled = _compose("config", "--format", "json", NEWSWATCH_ALERTS_REPLICAS="3")
    assert scaled.returncode == 0, scaled.stderr
    assert json.loads(scaled.stdout)["services"]["alerts"]["deploy"]["replicas"] == 3


def test_kafka_is_the_local_brokers_version_single_node_kraft_with_healthcheck_and_volume(compose):
    kafka = compose["services"]["kafka"]
    assert kafka["image"] == f"apache/kafka:{KAFKA_VERSION}"
    env = kafka["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093"
    assert kafka["healthcheck"]["test"] and "9092" in " ".join(kafka["healthcheck"]["test"])
    mounts = {v["target"]: v for v in kafka["volumes"]}
    assert mounts[env["KAFKA_LOG_DIRS"]]["type"] == "volume"


@pytest.mark.parametrize("service", NEWSWATCH_SERVICES)
def test_newswatch_services_share_one_image_config_mount_and_wait_for_a_healthy_broker(compose, service):
    spec = compose["services"][service]
    assert spec["image"] == compose["services"]["ingest"]["image"]
    assert spec["build"]["context"] == str(REPO)
    config_mount = next(v for v in spec["volumes"] if v["target"] == "/etc/newswatch")
    assert config_mount["source"] == str(REPO / "seeds") and config_mount["read_only"] is True
    if service != "sink":  # the sink talks HTTP only
        assert spec["depends_on"]["kafka"]["condition"] == "service_healthy"
        assert spec["environment"]["NEWSWATCH_KAFKA_BOOTSTRAP"] == "kafka:9092"


def test_no_secret_values_in_the_compose_file(compose):
    text = COMPOSE_FILE.read_text()
    assert "whsec_" not in text and not re.search(r"hooks\.slack\.com|discord(app)?\.com/api/webhooks", text)
    for name, spec in compose["services"].items():
        for key, value in (spec.get("environment") or {}).items():
            if re.search(r"SECRET|TOKEN|PASSWORD|WEBHOOK", key):
                pytest.fail(f"{name}: {key} is set in docker-compose.yml; secrets belong in .env")
    example = (REPO / ".env.example").read_text()
    assert re.search(r"^NEWSWATCH_SINK_SECRET=$", example, re.M), ".env.example must name the secret, empty"


def test_containers_run_the_same_verbs_and_options_as_newswatch_up(compose, tmp_path):
    """Every command a container runs is one `newswatch up` runs (the end-to-end test runs those)."""
    planned = {spec.name: spec.argv[3:] for spec in plan_children(Path("/cfg.yaml"), UpSettings(), tmp_path)}
    for service in NEWSWATCH_SERVICES:
        command = compose["services"][service]["command"]
        assert command[0] == service and service in planned
        options = {arg for arg in command if arg.startswith("--")}
        assert options == {arg for arg in planned[service] if arg.startswith("--")}, service
    assert re.search(r'^ENTRYPOINT \["newswatch"\]$', DOCKERFILE.read_text(), re.M)


def test_dockerfile_passes_hadolint():
    result = subprocess.run([_tool("hadolint"), "--no-color", str(DOCKERFILE)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, f"hadolint:\n{result.stdout}{result.stderr}"


def test_dockerfile_is_slim_pinned_and_unprivileged():
    text = DOCKERFILE.read_text()
    bases = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert bases and all(re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base) for base in bases), bases
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")
