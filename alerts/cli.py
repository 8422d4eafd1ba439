"""`newswatch alerts` (run the dispatcher), `newswatch alerts test SUBSCRIPTION`, `newswatch alerts replay`.

Thin verbs: load and check config and secrets up front (a missing variable is a clear error
before anything starts), build the clients, hand them to the stage's code.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import ssl
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import partial
from pathlib import Path

import click
import httpx
import pydantic

from alerts.deliver import attempt
from alerts.dispatcher import Dispatcher
from alerts.metrics import AlertMetrics
from alerts.payload import encode_body
from alerts.records import AlertDeadLetter, PendingDelivery
from alerts.settings import AlertsSettings
from alerts.signing import signing_key
from alerts.silences import SilenceWatcher, add_silence, remove_silences
from alerts.durations import parse_duration
from alerts.subscriptions import (Endpoint, Silence, SilenceMatchers, SubscriptionsFile, load_subscriptions,
                                  resolve_endpoint)
from newswatch.config import AppConfig, config_path, load_config, pack_topic_ids, subscription_topic_problems
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
    subscriptions_path: Path

    @property
    def settings(self) -> AlertsSettings:
        return self.config.alerts


def load_stage(path: Path | None, environ=None) -> Stage:
    """newswatch.yaml, its subscriptions file, and every enabled subscription's secrets from the
    environment (`environ`, default os.environ)."""
    config = load_config(path)
    subs_path = config.resolve(config.subscriptions)
    if subs_path is None:
        raise ConfigError.single(str(config_path(path)), "no subscriptions file is configured", key="subscriptions")
    subscriptions = load_subscriptions(subs_path)
    unknown_topics = subscription_topic_problems(config)
    if unknown_topics:  # a subscription to a topic no pack raises would silently never receive anything
        raise ConfigError(unknown_topics)
    endpoints = {}
    for sub in subscriptions.subscriptions:
        if sub.enabled:
            endpoint = resolve_endpoint(sub, environ)
            if endpoint.secret is not None:
                signing_key(endpoint.secret)  # a malformed whsec_ secret fails now, not at the first alert
            endpoints[sub.name] = endpoint
    return Stage(config, subscriptions, endpoints, subs_path)


def http_client(settings: AlertsSettings, tls: ssl.SSLContext | None = None) -> httpx.AsyncClient:
    """A client for webhooks: address guard, no redirects, the stage timeout, a small keep-alive pool
    (the dispatcher makes one per subscription, whose deliveries run one at a time).

    Pass one shared `tls` context: loading the CA bundle takes tens of milliseconds each time.
    """
    connections = settings.per_host_concurrency
    transport = guarded_transport(allow_private_networks=settings.allow_private_networks,
                                  allow_networks=settings.allow_networks,
                                  verify=tls if tls is not None else True,
                                  limits=httpx.Limits(max_connections=connections,
                                                      max_keepalive_connections=connections))
    return httpx.AsyncClient(transport=transport, follow_redirects=False, timeout=settings.timeout)


config_option = click.option("--config", "config_file", type=click.Path(path_type=Path), default=None,
                             help="newswatch.yaml (default: $NEWSWATCH_CONFIG, else seeds/newswatch.yaml)")


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
    dispatcher = Dispatcher(settings=stage.settings, subscriptions=stage.subscriptions, endpoints=stage.endpoints,
                            topics=kafka.topics, bootstrap=kafka.bootstrap(),
                            client_factory=partial(http_client, stage.settings, httpx.create_ssl_context()),
                            metrics=metrics,
                            poll_silences=SilenceWatcher(stage.subscriptions_path, _known_topics(stage.config)).poll)
    await dispatcher.run(stop)


def _known_topics(config: AppConfig) -> set[str] | None:
    """The topic ids of the configured packs (None when there are none to compare with)."""
    packs = config.resolve(config.watchlists)
    return (pack_topic_ids(packs) or None) if packs is not None and packs.exists() else None


def _stage_for(ctx: click.Context, config_file: Path | None) -> Stage:
    setup_logging("DEBUG" if ctx.obj.get("log_level") == "DEBUG" else "WARNING")
    return load_stage(config_file or ctx.obj.get("config_file"))


def _demo_environ(config_file: Path | None, run_dir: Path) -> dict[str, str] | None:
    """The environment with the demo sink's secret from a running `newswatch up` (the file it
    wrote in its run folder), when that variable is not set; None when there is nothing to add."""
    from newswatch.stack.runner import SINK_SECRET_FILE

    sink = load_config(config_file).up.sink
    secret_file = run_dir / SINK_SECRET_FILE
    if sink is None or os.environ.get(sink.secret_env) or not secret_file.is_file():
        return None
    click.echo(f"using the secret of the running `newswatch up` for {sink.secret_env} ({secret_file})", err=True)
    return {**os.environ, sink.secret_env: secret_file.read_text(encoding="utf-8").strip()}


@alerts.command("test")
@click.argument("subscription")
@config_option
@click.option("--run-dir", type=click.Path(path_type=Path), default=Path(".newswatch/up"), show_default=True,
              help="where a running `newswatch up` keeps the demo sink's secret (used when its variable is unset)")
@click.pass_context
def alerts_test(ctx: click.Context, subscription: str, config_file: Path | None, run_dir: Path) -> None:
    """Send one signed test alert to SUBSCRIPTION and print the receiver's answer."""
    config_file = config_file or ctx.obj.get("config_file")
    setup_logging("DEBUG" if ctx.obj.get("log_level") == "DEBUG" else "WARNING")
    stage = load_stage(config_file, _demo_environ(config_file, run_dir))
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


def _subscriptions_path(config_file: Path | None) -> Path:
    return _subscriptions_config(config_file)[1]


def _subscriptions_config(config_file: Path | None) -> tuple[AppConfig, Path]:
    config = load_config(config_file)
    path = config.resolve(config.subscriptions)
    if path is None:
        raise ConfigError.single(str(config_path(config_file)), "no subscriptions file is configured",
                                 key="subscriptions")
    return config, path


@alerts.group("silence")
def silence() -> None:
    """Mute alerts matching topic/source/language/term until a time (kept in the subscriptions file)."""


@silence.command("add")
@config_option
@click.option("--topic")
@click.option("--source")
@click.option("--language")
@click.option("--term")
@click.option("--for", "duration", help="how long, e.g. 2h, 3d")
@click.option("--until", "until", type=click.DateTime(["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%d"]),
              help="until this UTC time (ISO-8601)")
@click.option("--subscription", "subscriptions", multiple=True, help="only for this subscription (repeatable)")
@click.option("--comment", default="", help="why (shown by `silence list`)")
@click.pass_context
def silence_add(ctx: click.Context, config_file: Path | None, topic, source, language, term, duration, until,
                subscriptions, comment) -> None:
    """Add a silence; a running `newswatch alerts` applies it within seconds."""
    now = datetime.now(timezone.utc)
    if (duration is None) == (until is None):
        raise click.UsageError("give exactly one of --for or --until")
    try:
        expires = now + timedelta(seconds=parse_duration(duration)) if duration else \
            (until if until.tzinfo else until.replace(tzinfo=timezone.utc))
        matchers = SilenceMatchers(topic=topic, source=source, language=language, term=term)
    except pydantic.ValidationError as exc:
        raise click.UsageError(exc.errors()[0]["msg"].removeprefix("Value error, ")) from None
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    config, path = _subscriptions_config(config_file or ctx.obj.get("config_file"))
    known = _known_topics(config)
    if topic is not None and known is not None and topic.lower() not in {k.lower() for k in known}:
        raise click.UsageError(f"--topic {topic!r} is not a topic of any loaded pack "
                               f"(known: {', '.join(sorted(known))}); the silence would never match")
    add_silence(path, Silence(matchers=matchers, expires_at=expires, subscriptions=subscriptions, comment=comment))
    described = ", ".join(f"{k}={v}" for k, v in matchers.model_dump(exclude_none=True).items())
    click.echo(f"silenced {described} until {expires.strftime('%Y-%m-%dT%H:%M:%SZ')} "
               f"({', '.join(subscriptions) or 'every subscription'}) in {path}")


@silence.command("list")
@config_option
@click.option("--all", "show_all", is_flag=True, help="include expired silences")
@click.pass_context
def silence_list(ctx: click.Context, config_file: Path | None, show_all: bool) -> None:
    """Print the silences of the subscriptions file (active ones unless --all)."""
    path = _subscriptions_path(config_file or ctx.obj.get("config_file"))
    now = datetime.now(timezone.utc)
    shown = 0
    for number, item in enumerate(load_subscriptions(path).silences, start=1):
        if item.active(now) or show_all:
            shown += 1
            click.echo(f"#{number:<3} {_describe_silence(item, now)}")
    if not shown:
        click.echo("no active silences" if not show_all else "no silences")


@silence.command("remove")
@config_option
@click.argument("numbers", nargs=-1, type=click.IntRange(min=1))
@click.option("--expired", is_flag=True, help="also remove every silence that has expired")
@click.pass_context
def silence_remove(ctx: click.Context, config_file: Path | None, numbers: tuple[int, ...], expired: bool) -> None:
    """Remove silences by their number in `silence list --all` (and/or all expired ones with --expired);
    a running `newswatch alerts` stops applying them within seconds."""
    if not numbers and not expired:
        raise click.UsageError("give the numbers of the silences to remove (see `silence list --all`), or --expired")
    path = _subscriptions_path(config_file or ctx.obj.get("config_file"))
    now = datetime.now(timezone.utc)
    try:
        removed = remove_silences(path, numbers, expired_at=now if expired else None)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    for item in removed:
        click.echo(f"removed {_describe_silence(item, now)}")
    if not removed:
        click.echo("no expired silences to remove")


def _describe_silence(item: Silence, now: datetime) -> str:
    state = "active " if item.active(now) else "expired"
    described = ", ".join(f"{k}={v}" for k, v in item.matchers.model_dump(exclude_none=True).items())
    return (f"{state} until {item.expires_at.strftime('%Y-%m-%dT%H:%M:%SZ')}  {described}"
            f"  [{', '.join(item.subscriptions) or 'all'}]" + (f"  # {item.comment}" if item.comment else ""))
