"""Session-wide fixtures: one real Kafka broker per test session, and per-test topic names.

The broker is NEWSWATCH_KAFKA_BOOTSTRAP when set; otherwise the local broker is started on
free ports in a throwaway data directory and stopped at the end. With CI=true a broker that
cannot be had fails the run; elsewhere the integration tests are skipped with the reason.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import tempfile
import uuid
from pathlib import Path

import pytest

from newswatch.broker import local
from newswatch.errors import BrokerError
from newswatch.kafka_settings import BOOTSTRAP_ENV
from newswatch.stack.supervisor import guarded

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """The bootstrap address of a running broker (one per session)."""
    external = os.environ.get(BOOTSTRAP_ENV)
    if external:
        if not local.metadata_ok(external, timeout=10):
            _unavailable(f"{BOOTSTRAP_ENV}={external} does not answer a metadata request")
        yield external
        return
    data_dir = Path(tempfile.mkdtemp(prefix="newswatch-test-kafka-"))
    # Through the orphan guard: a session killed outright (SIGKILL, OOM) takes its broker with it.
    broker = local.LocalBroker(data_dir=data_dir, port=local.free_port(), controller_port=local.free_port(),
                               heap_mb=768, launcher_prefix=guarded(()))
    previous = _stop_on_sigterm()
    try:
        try:
            status, _ = broker.start(timeout=180)
        except BrokerError as exc:
            shutil.rmtree(data_dir, ignore_errors=True)
            _unavailable(f"the local Kafka broker could not be started: {exc}")
        try:
            yield status.bootstrap
        finally:
            broker.stop(timeout=30)
            shutil.rmtree(data_dir, ignore_errors=True)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stop_on_sigterm():
    """SIGTERM ends the session like Ctrl-C (pytest then tears the session fixtures down), rather
    than killing it before the broker is stopped. Returns the handler it replaced."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    return signal.signal(signal.SIGTERM, interrupt)


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"Kafka broker unavailable in CI (integration tests must not skip): {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def topic_prefix(request) -> str:
    """A topic prefix unique to this test, so tests never see each other's records."""
    name = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name)[:60].strip("-")
    return f"t.{name}.{uuid.uuid4().hex[:8]}."
