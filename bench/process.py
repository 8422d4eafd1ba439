"""Benchmark: articles per second through `newswatch process` (default topic packs) next to a
passthrough faust worker (same App settings and batching, consume and produce, no detection),
both on the real broker, in the same run, over the same pre-filled articles topic.

    .venv/bin/python bench/process.py [--articles 20000] [--match-share 0.1] [--rounds 2]

Uses NEWSWATCH_KAFKA_BOOTSTRAP when set, else starts a throwaway local broker on free ports.
Each worker is a real subprocess; its rate is taken from its own Prometheus counter, from its
first processed batch to its last, so start-up and rebalancing are not counted.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from newswatch.broker import local  # noqa: E402
from newswatch.kafka_settings import BOOTSTRAP_ENV, Topics  # noqa: E402


# --- the passthrough worker (run as a subprocess by this script) ---------------------------------

def passthrough_worker(config_path: Path, metrics_port: int) -> None:
    """A faust worker like the processor, minus the work: every article is re-sent as is."""
    from prometheus_client import CollectorRegistry, Counter, start_http_server

    from newswatch.config import load_config
    from processors.app import create_app
    from processors.topics import _raw_topic
    from processors.worker import NewswatchWorker, ensure_processor_topics

    config = load_config(config_path)
    names = config.kafka.topics
    partitions = ensure_processor_topics(config)[names.articles]
    app = create_app(config, partitions=partitions, app_suffix="bench-passthrough")
    articles, copies = _raw_topic(app, names.articles), _raw_topic(app, names.name("passthrough"))
    registry = CollectorRegistry()
    handled = Counter("newswatch_processor_articles", "articles passed through", ["outcome"], registry=registry)

    @app.agent(articles, concurrency=1)
    async def passthrough(stream):
        async for events in stream.take_events(config.process.batch_size,
                                               within=config.process.batch_within.total_seconds()):
            for event in events:
                await copies.send(key=event.message.key, value=event.message.value)
            handled.labels("passed").inc(len(events))

    start_http_server(metrics_port, registry=registry)
    NewswatchWorker(app, loglevel="WARNING", quiet=True, redirect_stdouts=False).execute_from_commandline()


# --- the harness ------------------------------------------------------------------------------

def produce_articles(bootstrap: str, topic: str, count: int, match_share: float) -> dict[str, int]:
    from kafka import KafkaProducer

    from tests.processors.corpus import labelled_articles
    from tests.support.kafka import create_topics

    create_topics(bootstrap, topic)
    corpus = labelled_articles(count, seed=11, id_prefix="bench")
    rng = random.Random(3)
    # Keep about `match_share` of the articles with topics (news feeds are mostly other news).
    with_topics = [item for item in corpus if item.topics]
    without = [item for item in corpus if not item.topics]
    wanted = int(count * match_share)
    chosen = rng.sample(with_topics, min(wanted, len(with_topics)))
    chosen += [without[i % len(without)] for i in range(count - len(chosen))]
    rng.shuffle(chosen)
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=512 * 1024, acks=1)
    for n, item in enumerate(chosen):
        article = item.article.model_copy(update={"id": f"bench-{n:07d}"})
        producer.send(topic, key=article.id.encode(), value=article.encode())
    producer.flush()
    producer.close()
    return {"articles": len(chosen), "with_topics": sum(1 for item in chosen if item.topics)}


def handled_count(port: int) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return -1.0
    total = 0.0
    for family in text_string_to_metric_families(text):
        if family.name == "newswatch_processor_articles":
            total += sum(s.value for s in family.samples if s.name.endswith("_total"))
    return total


def measure(command: list[str], port: int, expected: int, env: dict, timeout: float, log_path: Path) -> dict:
    """Run one worker until it has handled `expected` articles; rate from first batch to last."""
    with open(log_path, "w") as log:
        worker = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            started = time.monotonic()
            first_at = first_count = None
            while True:
                count = handled_count(port)
                now = time.monotonic()
                if count > 0 and first_at is None:
                    first_at, first_count = now, count
                if count >= expected:
                    break
                if worker.poll() is not None:
                    raise SystemExit(f"worker exited early ({worker.returncode}); see {log_path}")
                if now - started > timeout:
                    raise SystemExit(f"worker handled {count}/{expected} in {timeout:.0f} s; see {log_path}")
                time.sleep(0.02)
            done_at = time.monotonic()
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                code = worker.wait(timeout=60)
            except subprocess.TimeoutExpired:
                worker.kill()
                code = "killed"
    elapsed = max(done_at - first_at, 1e-6)
    return {"rate": (expected - first_count) / elapsed, "startup_s": first_at - started, "exit": code}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=20_000)
    parser.add_argument("--match-share", type=float, default=0.1,
                        help="share of articles that raise a topic (default 0.1)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating runs of each worker")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--passthrough-worker", nargs=2, metavar=("CONFIG", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.passthrough_worker:
        passthrough_worker(Path(args.passthrough_worker[0]), int(args.passthrough_worker[1]))
        return

    broker = None
    bootstrap = os.environ.get(BOOTSTRAP_ENV)
    work = Path(tempfile.mkdtemp(prefix="newswatch-bench-"))
    if not bootstrap:
        broker = local.LocalBroker(data_dir=work / "kafka", port=local.free_port(),
                                   controller_port=local.free_port(), heap_mb=768)
        bootstrap = broker.start(timeout=180)[0].bootstrap
    try:
        results: dict[str, list[dict]] = {"passthrough": [], "process": []}
        for round_no in range(args.rounds):
            prefix = f"bench.{uuid.uuid4().hex[:8]}."
            config = work / f"newswatch-{round_no}.yaml"
            config.write_text(f'kafka:\n  topic_prefix: "{prefix}"\nwatchlists: {ROOT / "seeds" / "watchlists"}\n'
                              f"process:\n  batch_size: {args.batch_size}\n")
            produced = produce_articles(bootstrap, Topics(prefix).articles, args.articles, args.match_share)
            env = {**os.environ, BOOTSTRAP_ENV: bootstrap}
            order = ["passthrough", "process"] if round_no % 2 == 0 else ["process", "passthrough"]
            for kind in order:
                port = local.free_port()
                if kind == "process":
                    command = [sys.executable, "-m", "newswatch", "process", "--config", str(config),
                               "--metrics-port", str(port)]
                else:
                    command = [sys.executable, __file__, "--passthrough-worker", str(config), str(port)]
                figures = measure(command, port, produced["articles"], env, timeout=600,
                                  log_path=work / f"{kind}-{round_no}.log")
                results[kind].append(figures)
                print(f"round {round_no + 1} {kind:<11} {figures['rate']:8.0f} articles/s "
                      f"(start-up {figures['startup_s']:.1f} s, exit {figures['exit']})", flush=True)
        best = {kind: max(r["rate"] for r in runs) for kind, runs in results.items()}
        median = {kind: statistics.median(r["rate"] for r in runs) for kind, runs in results.items()}
        print()
        print(f"articles per run: {produced['articles']} ({produced['with_topics']} raise a topic), "
              f"batch size {args.batch_size}, broker {bootstrap}")
        print(f"passthrough (consume + produce)   best {best['passthrough']:8.0f}  median "
              f"{median['passthrough']:8.0f} articles/s")
        print(f"newswatch process (default packs) best {best['process']:8.0f}  median "
              f"{median['process']:8.0f} articles/s")
        print(f"ratio process / passthrough: best {best['process'] / best['passthrough']:.2f}, median "
              f"{median['process'] / median['passthrough']:.2f} (goal >= 0.5); goal >= 3000 articles/s "
              f"(median): {'met' if median['process'] >= 3000 else 'NOT met'}")
        print("the machine is shared and has 2 cores: figures vary by run")
    finally:
        if broker is not None:
            broker.stop(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
