"""Running `newswatch process` as a real subprocess in tests, and producing/reading its records."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable
from pathlib import Path

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from newswatch.kafka_settings import BOOTSTRAP_ENV
from newswatch.schemas import Article, Match, decode

ROOT = Path(__file__).resolve().parents[2]


def write_config(folder: Path, prefix: str, watchlists: Path, **process: object) -> Path:
    """A newswatch.yaml under `folder` for one test: its own topic prefix and watchlists."""
    lines = ["kafka:", f'  topic_prefix: "{prefix}"', f"watchlists: {watchlists}"]
    if process:
        lines.append("process:")
        lines.extend(f"  {key}: {value}" for key, value in process.items())
    path = folder / "newswatch.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


class WorkerProcess:
    """`python -m newswatch process --config ...` with its output captured to a log file."""

    def __init__(self, config: Path, bootstrap: str, log_path: Path, metrics_port: int = 0):
        self.log_path = log_path
        self._log = open(log_path, "ab")
        env = {**os.environ, BOOTSTRAP_ENV: bootstrap}
        self.metrics_port = metrics_port
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "newswatch", "process", "--config", str(config),
             "--metrics-port", str(metrics_port)],
            cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Signal the worker and wait for it; returns its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"worker ignored {signal.Signals(sig).name} for {timeout} s:\n{self.log()}")
        self._log.close()
        return self.proc.returncode

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self._log.close()

    def metrics(self) -> dict[tuple[str, tuple], float]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as response:
            text = response.read().decode()
        return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
                for family in text_string_to_metric_families(text) for sample in family.samples}


def wait_until_consuming(worker: WorkerProcess, bootstrap: str, group_id: str, timeout: float = 300) -> None:
    """Return once the worker's consumer group is Stable with a member (partitions assigned): the
    worker is ready, however long a loaded machine took to get it there. Fails at once, with the
    log, if the worker exits; `timeout` only catches a worker that hangs."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="tests-readiness")
    try:
        deadline = time.monotonic() + timeout
        while True:
            if worker.proc.poll() is not None:
                raise AssertionError(f"worker exited {worker.proc.returncode} before it was ready:\n{worker.log()}")
            try:
                group = admin.describe_groups([group_id]).get(group_id) or {}
            except KafkaError:  # no group coordinator yet (a new broker's offsets topic), or the group is new
                group = {}
            if group.get("group_state") == "Stable" and group.get("members"):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"worker not consuming after {timeout:.0f} s (group {group_id}: "
                                     f"{group.get('group_state')}):\n{worker.log()[-3000:]}")
            time.sleep(0.2)
    finally:
        admin.close()


def produce(bootstrap: str, topic: str, records: Iterable[tuple[bytes | None, bytes | None]]) -> int:
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=10, batch_size=256 * 1024)
    count = 0
    for key, value in records:
        producer.send(topic, key=key, value=value)
        count += 1
    producer.flush()
    producer.close()
    return count


def article_records(articles: Iterable[Article]) -> list[tuple[bytes, bytes]]:
    return [(a.id.encode(), a.encode()) for a in articles]


def matches_by_id(records) -> dict[str, list]:
    """Match records grouped by article id (a replay may have produced some twice)."""
    grouped: dict[str, list] = {}
    for record in records:
        match = decode(record.value, Match)
        assert record.key == match.story_id.encode(), "matches are keyed by story id"
        grouped.setdefault(match.id, []).append(record)
    return grouped


def read_all(bootstrap: str, topic: str) -> list:
    """Every record in `topic` up to its current end (empty when the topic does not exist yet)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            return []
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        records: list = []
        deadline = time.monotonic() + 30
        while any(consumer.position(tp) < end[tp] for tp in tps):
            for batch in consumer.poll(timeout_ms=200).values():
                records.extend(r for r in batch if r.offset < end[TopicPartition(r.topic, r.partition)])
            if time.monotonic() > deadline:
                raise AssertionError(f"could not read {topic} to its end within 30 s")
        return records
    finally:
        consumer.close()
