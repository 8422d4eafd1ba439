"""With CI=true an unreachable broker fails the integration tests; elsewhere it skips them."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent
TARGET = "tests/integration/test_article_roundtrip.py"


def run_pytest(ci: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CI": ci, "NEWSWATCH_KAFKA_BOOTSTRAP": "127.0.0.1:1"}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", TARGET],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_missing_broker_fails_in_ci():
    result = run_pytest("true")
    assert result.returncode != 0
    assert "integration tests must not skip" in result.stdout
    assert " skipped" not in result.stdout.splitlines()[-1]


def test_missing_broker_skips_outside_ci():
    result = run_pytest("")
    assert result.returncode == 0, result.stdout
    assert "1 skipped" in result.stdout.splitlines()[-1]
