"""`newswatch alerts` (run the dispatcher), `newswatch alerts test SUBSCRIPTION`, `newswatch alerts replay`.

Thin verbs: load and check config and secrets up front (a missing variable is a clear error
before anything starts), build the clients, hand them to the stage's code.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import click
import httpx

from alerts.deliver import attempt
from alerts.dispatcher import Dispatcher
from alerts.metrics import AlertMetrics
from alerts.payload import encode_body
from alerts.records import AlertDeadLetter, PendingDelivery
from alerts.settings import AlertsSettings
from alerts.signing import signing_key
from alerts.subscriptions import Endpoint, SubscriptionsFile, load_subscriptions, resolve_endpoint
from newswatch.config import AppConfig, config_path, load_config
from newswatch.errors import ConfigError, NewswatchError, SchemaError
from newswatch.logs import log_event, setup_logging
from newswatch.netguard import guarded_transport
from newswatch.schemas import AlertPayload, decode

log = logging.getLogger("newswatch.alerts")
DEFAULT_METRICS_PORT = 9103


@dataclass(frozen=True)
class Stage:
    config: AppConfig
    subscriptions: SubscriptionsFile
    endpoints: dict[str, Endpoint]

    @property
    def settings(self) -> AlertsSettings:
        return self.config.alerts


def load_stage(path: Path | None) -> Stage:
    """newswatch.yaml, its subscriptions file, and every enabled subscription's secrets from the environment."""
    config = load_config(path)
    subs_path = config.resolve(config.subscriptions)
    if subs_path is None:
        raise ConfigError.single(str(config_path(path)), "no subscriptions file is configured", key="subscriptions")
    subscriptions = load_subscriptions(subs_path)
    endpoints = {}
    for sub in subscriptions.subscriptions:
        if sub.enabled:
            endpoint = resolve_endpoint(sub)
            if endpoint.secret is not None:
                signing_key(endpoint.secret)  # a malformed whsec_ secret fails now, not at the first alert
            endpoints[sub.name] = endpoint
    return Stage(config, subscriptions, endpoints)


def http_client(settings: AlertsSettings) -> httpx.AsyncClient:
    """The one client for webhooks: address guard, no redirects, the stage timeout."""
    transport = guarded_transport(allow_private_networks=settings.allow_private_networks,
                                  limits=httpx.Limits(max_connections=200, max_keepalive_connections=50))
    return httpx.AsyncClient(transport=transport, follow_redirects=False, timeout=settings.timeout)


config_option = click.option("--config", "config_file", type=click.Path(path_type=Path), default=None,
                             help="newswatch.yaml (default: seeds/newswatch.yaml)")


@click.group(invoke_without_command=True)
@config_option
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=DEFAULT_METRICS_PORT, show_default=True,
              help="Prometheus metrics port (0 disables)")
@click.option("--log-level", envvar="NEWSWATCH_LOG_LEVEL", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
@click.pass_context
def alerts(ctx: click.Context, config_file: Path | None, metrics_port: int, log_level: str) -> None:
    """Run the alert dispatcher until SIGTERM/SIGINT (or use a subcommand)."""
    ctx.ensure_object(dict)
    ctx.obj.update(config_file=config_file, log_level=log_level.upper())
    if ctx.invoked_subcommand is not None:
        return
    stage = load_stage(config_file)
    setup_logging(log_level.upper())
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry()
    metrics = AlertMetrics(registry)
    server = start_http_server(metrics_port, registry=registry) if metrics_port else None
    kafka = stage.config.kafka
    log_event(log, logging.INFO, "alerts_started", subscriptions=len(stage.endpoints),
              matches_topic=kafka.topics.matches, bootstrap=kafka.bootstrap(), metrics_port=metrics_port)
    try:
        asyncio.run(_run(stage, metrics))
    finally:
        if server is not None:
            server[0].shutdown()
    log_event(log, logging.INFO, "alerts_stopped")


async def _run(stage: Stage, metrics: AlertMetrics) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    kafka = stage.config.kafka
    async with http_client(stage.settings) as client:
        dispatcher = Dispatcher(settings=stage.settings, subscriptions=stage.subscriptions,
                                endpoints=stage.endpoints, topics=kafka.topics, bootstrap=kafka.bootstrap(),
                                client=client, metrics=metrics)
        await dispatcher.run(stop)


def _stage_for(ctx: click.Context, config_file: Path | None) -> Stage:
    setup_logging("DEBUG" if ctx.obj.get("log_level") == "DEBUG" else "WARNING")
    return load_stage(config_file or ctx.obj.get("config_file"))


@alerts.command("test")
@click.argument("subscription")
@config_option
@click.pass_context
def alerts_test(ctx: click.Context, subscription: str, config_file: Path | None) -> None:
    """Send one signed test alert to SUBSCRIPTION and print the receiver's answer."""
    stage = _stage_for(ctx, config_file)
    sub = next((s for s in stage.subscriptions.subscriptions if s.name == subscription), None)
    if sub is None:
        names = ", ".join(s.name for s in stage.subscriptions.subscriptions) or "none"
        raise NewswatchError(f"no subscription named {subscription!r} (known: {names})")
    if sub.name not in stage.endpoints:
        raise NewswatchError(f"subscription {subscription!r} is disabled in the config")
    now = datetime.now(timezone.utc)
    msg_id = f"msg_test_{uuid.uuid4().hex[:20]}"
    payload = AlertPayload(
        id=msg_id, timestamp=now, subscription=sub.name, story_id=f"test-{msg_id[9:]}", reason="test",
        sources_count=0, sources=(), topics=(),
        article={"id": "test", "title": "newswatch test alert: this subscription works", "url": None,
                 "source": "newswatch", "lang": "en", "published_at": None, "detected_at": None,
                 "feed": {"url": "newswatch:test", "title": None}, "summary": "Sent by `newswatch alerts test`."})
    pending = PendingDelivery(id=msg_id, subscription=sub.name, kind="test", body=encode_body(payload).decode(),
                              created_at=now, next_attempt_at=now)
    result = asyncio.run(_attempt_once(stage, pending))
    if result.status is not None and 200 <= result.status < 300:
        click.echo(f"ok: {sub.name} answered HTTP {result.status} in {result.elapsed * 1000:.0f} ms "
                   f"(webhook-id {msg_id})")
        return
    what = f"HTTP {result.status}" if result.status is not None else f"{result.error} ({result.detail})"
    raise NewswatchError(f"{sub.name}: test alert not accepted: {what}")


async def _attempt_once(stage: Stage, pending: PendingDelivery):
    sub = next(s for s in stage.subscriptions.subscriptions if s.name == pending.subscription)
    async with http_client(stage.settings) as client:
        return await attempt(client, pending, sub, stage.endpoints[sub.name], datetime.now(timezone.utc),
                             stage.settings.timeout)


def read_dead_letters(bootstrap: str, topic: str, timeout: float = 10.0) -> list[AlertDeadLetter]:
    """Every record of the alerts DLQ, oldest first (records that do not decode are reported, not dropped)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest", client_id="newswatch-alerts-replay")
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            return []
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        letters: list[AlertDeadLetter] = []
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            for records in consumer.poll(timeout_ms=int(timeout * 1000)).values():
                for record in records:
                    try:
                        letters.append(decode(record.value, AlertDeadLetter))
                    except SchemaError as exc:
                        click.echo(f"skipped offset {record.offset}: {exc.reason}", err=True)
        return letters
    finally:
        consumer.close()


@alerts.command("replay")
@config_option
@click.option("--subscription", "only_subscription", default=None, help="only this subscription's records")
@click.option("--id", "only_ids", multiple=True, help="only this webhook-id (repeatable)")
@click.option("--dry-run", is_flag=True, help="list what would be sent, send nothing")
@click.pass_context
def alerts_replay(ctx: click.Context, config_file: Path | None, only_subscription: str | None,
                  only_ids: tuple[str, ...], dry_run: bool) -> None:
    """Re-send alerts from the DLQ, each once, with its original webhook-id (receivers dedupe on it)."""
    stage = _stage_for(ctx, config_file)
    kafka = stage.config.kafka
    letters = read_dead_letters(kafka.bootstrap(), kafka.topics.alerts_dlq)
    chosen: dict[str, AlertDeadLetter] = {}
    for letter in letters:  # the same alert dead-lettered twice is sent once
        if (only_subscription is None or letter.subscription == only_subscription) and \
                (not only_ids or letter.id in only_ids):
            chosen[letter.id] = letter
    if not chosen:
        click.echo("nothing to replay")
        return
    failures = asyncio.run(_replay(stage, list(chosen.values()), dry_run))
    click.echo(f"{len(chosen) - failures} of {len(chosen)} replayed" + (" (dry run)" if dry_run else ""))
    if failures:
        raise SystemExit(1)


async def _replay(stage: Stage, letters: list[AlertDeadLetter], dry_run: bool) -> int:
    failures = 0
    subs = {s.name: s for s in stage.subscriptions.subscriptions}
    async with http_client(stage.settings) as client:
        for letter in letters:
            line = f"{letter.id} {letter.subscription} (dead: {letter.reason}, {letter.attempts} attempts)"
            if letter.subscription not in stage.endpoints:
                click.echo(f"skip {line}: subscription no longer configured or disabled")
                failures += 1
                continue
            if dry_run:
                click.echo(f"would send {line}")
                continue
            now = datetime.now(timezone.utc)
            pending = PendingDelivery(id=letter.id, subscription=letter.subscription, kind=letter.kind,
                                      story_id=letter.story_id, body=letter.body, created_at=letter.created_at,
                                      next_attempt_at=now)
            result = await attempt(client, pending, subs[letter.subscription], stage.endpoints[letter.subscription],
                                   now, stage.settings.timeout)
            if result.status is not None and 200 <= result.status < 300:
                click.echo(f"sent {line}: HTTP {result.status}")
            else:
                failures += 1
                click.echo(f"FAILED {line}: " + (f"HTTP {result.status}" if result.status is not None
                                                 else f"{result.error}"))
    return failures
