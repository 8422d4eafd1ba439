"""`newswatch alerts` as real processes for multi-process tests: config for many subscriptions,
start, SIGTERM, SIGKILL, and what each process logged."""

from __future__ import annotations

import base64
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from newswatch.kafka_settings import BOOTSTRAP_ENV

ROOT = Path(__file__).resolve().parents[2]
SECRET_ENV = "NW_SCALE_SECRET"
SECRET = "whsec_" + base64.b64encode(b"scale-out-test-signing-key").decode()


def write_config(folder: Path, prefix: str, urls: dict[str, str], *, partitions: int = 3,
                 retry_schedule: str = "[1s, 1s, 1s]", wait: str = "1s", interval: str = "1h") -> Path:
    """newswatch.yaml and its subscriptions file: one json subscription per name in `urls`, all signed."""
    subs = ["subscriptions:"]
    for name, url in urls.items():
        subs += [f"  - name: {name}", f"    url: {url}", f"    secret_env: {SECRET_ENV}"]
    (folder / "subscriptions.yaml").write_text("\n".join(subs) + "\n", encoding="utf-8")
    config = folder / "newswatch.yaml"
    config.write_text(
        f"kafka:\n  topic_prefix: \"{prefix}\"\n  partitions: {partitions}\n"
        "subscriptions: subscriptions.yaml\n"
        f"alerts:\n  allow_private_networks: true\n  retry_schedule: {retry_schedule}\n  retry_jitter: 0\n"
        f"  grouping: {{wait: {wait}, interval: {interval}}}\n", encoding="utf-8")
    return config


class AlertsProcess:
    """One `python -m newswatch alerts` with its output in its own log file."""

    def __init__(self, config: Path, bootstrap: str, log_path: Path):
        self.log_path = log_path
        self._log = open(log_path, "ab")
        env = {**os.environ, SECRET_ENV: SECRET, BOOTSTRAP_ENV: bootstrap}
        self.proc = subprocess.Popen([sys.executable, "-m", "newswatch", "alerts", "--config", str(config),
                                      "--metrics-port", "0"], cwd=ROOT, env=env,
                                     stdout=self._log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def delivered_ids(self) -> set[str]:
        """webhook-ids this process logged as delivered (accepted by the receiver)."""
        return set(re.findall(r"alert_delivered .*?webhook_id=(\S+)", self.log()))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"alerts ignored SIGTERM for {timeout} s:\n{self.log()}")
        self._log.close()
        return self.proc.returncode

    def kill(self) -> int:
        self.proc.send_signal(signal.SIGKILL)
        code = self.proc.wait(timeout=30)
        self._log.close()
        return code

    def ensure_dead(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if not self._log.closed:
            self._log.close()
