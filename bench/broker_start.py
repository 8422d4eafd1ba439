"""How long `newswatch kafka start` takes to a ready broker, cold and warm, and the broker's memory.

    python bench/broker_start.py [--repeat 3]

cold:    empty jar cache and no ~/.m2, so every jar is downloaded and verified
warm:    jars cached, new data directory (storage is formatted)
restart: jars cached, existing data directory (the usual `newswatch kafka start`)
Baseline, measured in the same run: `java -version` (the bare JVM start every run pays).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from newswatch.broker import local


def timed(command: list[str], env: dict) -> float:
    began = time.monotonic()
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=300)
    return time.monotonic() - began


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    newswatch = [sys.executable, "-m", "newswatch", "kafka"]
    results: dict[str, list[float]] = {"java -version (baseline)": [], "cold": [], "warm": [], "restart": []}
    memory = []
    for _ in range(args.repeat):
        root = Path(tempfile.mkdtemp(prefix="nw-bench-broker-"))
        port = local.free_port()
        env = {**os.environ, "HOME": str(root / "home"), "NEWSWATCH_CACHE_DIR": str(root / "cache"),
               "NEWSWATCH_KAFKA_PORT": str(port), "NEWSWATCH_KAFKA_CONTROLLER_PORT": str(local.free_port())}
        (root / "home").mkdir()
        results["java -version (baseline)"].append(timed([local.find_java(), "-version"], env))
        try:
            for label, data in (("cold", "a"), ("warm", "b"), ("restart", "b")):
                run_env = {**env, "NEWSWATCH_KAFKA_DATA_DIR": str(root / data)}
                if label == "restart":
                    timed([*newswatch, "start"], run_env)
                    timed([*newswatch, "stop"], run_env)
                results[label].append(timed([*newswatch, "start"], run_env))
                pid = int((root / data / "broker.pid").read_text())
                time.sleep(2)  # let start-up allocation settle before reading RSS
                memory.append(rss_mb(pid))
                timed([*newswatch, "stop"], run_env)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    baseline = statistics.median(results["java -version (baseline)"])
    print(f"{'phase':28} {'median s':>9} {'min s':>7} {'max s':>7} {'x baseline':>11}")
    for label, values in results.items():
        median = statistics.median(values)
        print(f"{label:28} {median:9.2f} {min(values):7.2f} {max(values):7.2f} {median / baseline:11.1f}")
    print(f"broker resident memory after ready: median {statistics.median(memory):.0f} MB "
          f"(min {min(memory):.0f}, max {max(memory):.0f}), heap limit 512 MB")


if __name__ == "__main__":
    main()
