"""Benchmark: `newswatch process` with 1, 2 and 3 workers, the story stage alone, and a passthrough
faust worker (same App settings and batching, consume and produce, no detection) as the baseline,
all on the same broker in the same run.

    .venv/bin/python bench/process.py [--articles 20000] [--match-share 0.45] [--workers 1,2,3]
                                      [--child]

Every run gets a fresh topic prefix whose articles topic (3 partitions) is filled first. The
workers are real subprocesses; rates come from their own Prometheus counters, read when the whole
group is stable (every worker has joined) and when the run's output topic holds its last record,
so start-up and rebalancing are not counted. Progress in between is read from the broker (the
output topic's end offsets), not by scraping the workers, so measuring costs them nothing. A processor run ends when every candidate has become
a match (end to end, not just detected). The story stage alone reads a candidates topic copied
from the one-worker run, with no articles to detect. `--child` adds a one-worker run with
detection in a child process beside the event loop (process.detection_process: true).
Uses NEWSWATCH_KAFKA_BOOTSTRAP when set, else starts a throwaway local broker on free ports.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
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

PARTITIONS = 3


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

    create_topics(bootstrap, topic, partitions=PARTITIONS)
    corpus = labelled_articles(count, seed=11, id_prefix="bench")
    rng = random.Random(3)
    # Keep about `match_share` of the articles with topics (news feeds are mostly other news).
    with_topics = [item for item in corpus if item.topics]
    without = [item for item in corpus if not item.topics]
    wanted = int(count * match_share)
    chosen = [with_topics[i % len(with_topics)] for i in range(wanted)]
    chosen += [without[i % len(without)] for i in range(count - len(chosen))]
    rng.shuffle(chosen)
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=512 * 1024, acks=1)
    for n, item in enumerate(chosen):
        article = item.article.model_copy(update={"id": f"bench-{n:07d}"})
        producer.send(topic, key=article.id.encode(), value=article.encode())
    producer.flush()
    producer.close()
    return {"articles": len(chosen), "with_topics": sum(1 for item in chosen if item.topics)}


def copy_topic(bootstrap: str, source: str, target: str) -> int:
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    from tests.support.kafka import create_topics

    create_topics(bootstrap, target)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=512 * 1024, acks=1)
    tp = TopicPartition(source, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    end = consumer.end_offsets([tp])[tp]
    copied = 0
    while consumer.position(tp) < end:
        for records in consumer.poll(timeout_ms=500).values():
            for record in records:
                producer.send(target, key=record.key, value=record.value)
                copied += 1
    producer.flush()
    producer.close()
    consumer.close()
    return copied


def counters(port: int) -> dict[str, float]:
    """The worker's totals: articles detected (or passed through) and candidates handled."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return {}
    totals = {"articles": 0.0, "candidates": 0.0}
    for family in text_string_to_metric_families(text):
        for kind in totals:
            if family.name == f"newswatch_processor_{kind}":
                totals[kind] += sum(s.value for s in family.samples if s.name.endswith("_total"))
    return totals


class Watcher:
    """The bench's own view of a run, from the broker: whether the group is stable, and how many
    records the run's output topic holds. Progress is read from Kafka rather than by scraping the
    workers' metrics many times a second, which would cost the workers CPU (more for the processor,
    whose metrics are larger, than for the passthrough)."""

    def __init__(self, bootstrap: str):
        from kafka import KafkaAdminClient, KafkaConsumer

        self.admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="bench-process")
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)

    def group_is_stable(self, group: str, members: int) -> bool:
        from kafka.errors import KafkaError

        try:
            description = self.admin.describe_groups([group])[group]
            return description.get("group_state") == "Stable" and len(description["members"]) == members
        except KafkaError:
            return False

    def records_in(self, topic: str) -> int:
        from kafka import TopicPartition
        from kafka.errors import KafkaError

        try:
            partitions = self.consumer.partitions_for_topic(topic)  # None until the topic exists
            if not partitions:
                return 0
            offsets = self.consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
        except (KafkaError, KeyError):  # KeyError: a partition whose leader is not known yet
            return 0
        return sum(offsets.values())

    def close(self) -> None:
        self.admin.close()
        self.consumer.close()


def measure(commands: list[list[str]], ports: list[int], *, output: str, expected: int, group: str,
            watcher: Watcher, env: dict, timeout: float, logs: Path) -> dict:
    """Run the workers until topic `output` holds `expected` records; returns each counter's rate
    per worker (articles, candidates) over the window from the moment the group is stable."""
    workers = []
    for n, command in enumerate(commands):
        log = open(logs / f"{group}-{n}.log", "w")
        workers.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT))
    try:
        started = time.monotonic()
        window_start = None
        while True:
            now = time.monotonic()
            if window_start is None:
                if watcher.group_is_stable(group, len(commands)):
                    window_start = (time.monotonic(), [counters(port) for port in ports])
            else:
                total = watcher.records_in(output)
                if total >= expected:
                    done_at = time.monotonic()
                    final = [counters(port) for port in ports]
                    break
            for worker in workers:
                if worker.poll() is not None:
                    raise SystemExit(f"a worker exited early ({worker.returncode}); see {logs}")
            if now - started > timeout:
                raise SystemExit(f"{output}: not {expected} records in {timeout:.0f} s; see {logs}")
            time.sleep(0.05)
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(timeout=60)
            except subprocess.TimeoutExpired:
                worker.kill()
    if window_start is None:
        raise SystemExit(f"the group {group} never became stable before the run ended")
    begun, at_start = window_start
    elapsed = max(done_at - begun, 1e-6)
    rates = {kind: [(end.get(kind, 0.0) - start.get(kind, 0.0)) / elapsed for start, end in zip(at_start, final)]
             for kind in ("articles", "candidates")}
    return {"rates": rates, "elapsed_s": elapsed, "startup_s": begun - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=20_000)
    parser.add_argument("--match-share", type=float, default=0.45,
                        help="share of articles that raise a topic (default 0.45)")
    parser.add_argument("--workers", default="1,2,3", help="worker counts to run (default 1,2,3)")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--child", action="store_true",
                        help="also run one worker with detection in a child process (process.detection_process)")
    parser.add_argument("--child-processes", type=int, default=1,
                        help="child processes for the --child run (process.detection_processes; default 1)")
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
    env = {**os.environ, BOOTSTRAP_ENV: bootstrap}
    logs = work / "logs"
    logs.mkdir()

    def config_for(prefix: str, detection_process: bool = False) -> Path:
        path = work / f"{prefix}yaml"
        path.write_text(f'kafka:\n  topic_prefix: "{prefix}"\n  partitions: {PARTITIONS}\n'
                        f"watchlists: {ROOT / 'seeds' / 'watchlists'}\n"
                        f"process:\n  batch_size: {args.batch_size}\n"
                        f"  detection_process: {'true' if detection_process else 'false'}\n"
                        f"  detection_processes: {args.child_processes if detection_process else 1}\n")
        return path

    def process_commands(config: Path, count: int) -> tuple[list[list[str]], list[int]]:
        ports = [local.free_port() for _ in range(count)]
        return [[sys.executable, "-m", "newswatch", "process", "--config", str(config), "--metrics-port", str(p)]
                for p in ports], ports

    results: list[tuple[str, dict]] = []

    def report(label: str, figures: dict, kind: str = "articles", unit: str = "articles/s") -> float:
        per_worker = figures["rates"][kind]
        results.append((label, sum(per_worker)))
        each = " + ".join(f"{r:.0f}" for r in per_worker)
        print(f"{label:<38} {sum(per_worker):8.0f} {unit} (per worker {each}; window {figures['elapsed_s']:.1f} s, "
              f"start-up {figures['startup_s']:.1f} s)", flush=True)
        return sum(per_worker)

    watcher = Watcher(bootstrap)
    passthrough_rates: list[float] = []
    try:
        produced = None
        first_prefix = None
        runs = [("passthrough", 1, False)] + [("process", int(n), False) for n in args.workers.split(",")]
        if args.child:
            runs.append(("process-child", 1, True))
        # The baseline again at the end: on a shared machine the load drifts over a run of minutes,
        # and the ratios use the mean of both passthrough runs.
        runs.append(("passthrough", 1, False))
        for kind, count, detection_process in runs:
            prefix = f"bench.{uuid.uuid4().hex[:8]}."
            produced = produce_articles(bootstrap, Topics(prefix).articles, args.articles, args.match_share)
            config = config_for(prefix, detection_process)
            if kind == "passthrough":
                port = local.free_port()
                figures = measure([[sys.executable, __file__, "--passthrough-worker", str(config), str(port)]], [port],
                                  output=Topics(prefix).name("passthrough"), expected=produced["articles"],
                                  group=f"{prefix}bench-passthrough", watcher=watcher, env=env, timeout=900,
                                  logs=logs)
                report("passthrough (consume + produce)", figures)
                passthrough_rates.append(results.pop()[1])
                continue
            # End to end: the run ends when every candidate has become a match.
            commands, ports = process_commands(config, count)
            figures = measure(commands, ports, output=Topics(prefix).matches, expected=produced["with_topics"],
                              group=f"{prefix}processor", watcher=watcher, env=env, timeout=1200, logs=logs)
            beside = f" (detection in {args.child_processes} child{'ren' if args.child_processes > 1 else ''})"
            report(f"newswatch process x{count}" + (beside if detection_process else ""), figures)
            if count == 1 and not detection_process and first_prefix is None:
                first_prefix = prefix

        # The story stage alone: the one-worker run's candidates, nothing to detect.
        prefix = f"bench.{uuid.uuid4().hex[:8]}."
        copied = copy_topic(bootstrap, Topics(first_prefix or prefix).candidates, Topics(prefix).candidates)
        commands, ports = process_commands(config_for(prefix), 1)
        story_figures = measure(commands, ports, output=Topics(prefix).matches, expected=copied,
                                group=f"{prefix}processor", watcher=watcher, env=env, timeout=900, logs=logs)
        story_rate = report("story stage alone", story_figures, kind="candidates", unit="matches/s")

        base = sum(passthrough_rates) / len(passthrough_rates)
        print()
        print(f"articles per run: {produced['articles']} ({produced['with_topics']} raise a topic, "
              f"match share {args.match_share:.2f}), {PARTITIONS} partitions, batch size {args.batch_size}, "
              f"broker {bootstrap}")
        print(f"passthrough: {' and '.join(f'{r:.0f}' for r in passthrough_rates)} articles/s "
              f"(first and last run; mean {base:.0f})")
        for label, rate in results[:-1]:
            print(f"ratio {label} / passthrough: {rate / base:.2f}")
        for label, rate in results[:-1]:
            if label.startswith("newswatch process x1"):
                print(f"goal: one worker >= 0.5x passthrough at this match share ({label}): "
                      f"{'met' if rate / base >= 0.5 else 'NOT met'}")
        print(f"story stage ceiling: {story_rate:.0f} matches/s = {story_rate * 86_400 / 1e6:.1f} M matched "
              f"articles/day (one partition, one worker)")
        print("the machine is shared: figures vary by run; compare ratios within a run")
    finally:
        watcher.close()
        if broker is not None:
            broker.stop(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
