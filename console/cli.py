"""`newswatch console`: the web console, its store fed from Kafka (docs/console.md)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import click

from newswatch.errors import NewswatchError

log = logging.getLogger("newswatch.console")


class ConsoleError(NewswatchError):
    """The console cannot start (no token for a public address, a port in use)."""


def build_context(config_path: Path | None, environ: dict | None = None, *, with_feeder: bool = True,
                  host: str | None = None):
    """The app's context from newswatch.yaml: store, live packs, token, Kafka feeder."""
    from console.app import ConsoleContext
    from console.feeder import Feeder
    from console.settings import LOOPBACK_HOSTS
    from console.store import Store, TopicKinds
    from console.tester import LiveWatchlists
    from newswatch.config import config_path as find_config, load_config

    env = os.environ if environ is None else environ
    config = load_config(config_path)
    settings = config.console
    host = host or settings.host
    token = env.get(settings.token_env) or None
    if token is None and not (host in LOOPBACK_HOSTS or host.startswith("127.")):
        raise ConsoleError(f"the console is bound to {host}, beyond this machine: set an access token in "
                           f"{settings.token_env} first (or bind it to 127.0.0.1)")
    if token is not None and len(token) < 16:
        raise ConsoleError(f"{settings.token_env} is too short to guess safely: use 16 characters or more")
    store = Store(config.resolve(settings.store), TopicKinds.for_topics(config.kafka.topics))
    ctx = ConsoleContext(store=store, token=token, watchlists=LiveWatchlists(config.resolve(config.watchlists)),
                         subscriptions_path=config.resolve(config.subscriptions),
                         config_path=find_config(config_path).resolve(), draft_history=settings.draft_history,
                         ingest_settings=config.ingest)
    if with_feeder:
        ctx.feeder = Feeder(store, config.kafka.bootstrap(env), settings.retention, on_change=ctx.notify)
    return config, ctx


@click.command("console")
@click.option("--config", "config_file", type=click.Path(path_type=Path), default=None,
              help="newswatch.yaml (default: seeds/newswatch.yaml)")
@click.option("--host", default=None, help="bind address [default: console.host, 127.0.0.1]")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="port [default: console.port, 8790]")
@click.option("--log-level", envvar="NEWSWATCH_LOG_LEVEL", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
def console(config_file: Path | None, host: str | None, port: int | None, log_level: str) -> None:
    """Serve the web console: live stories, evidence, search, feeds, rule tester, alerts."""
    import uvicorn

    from console.app import create_app
    from newswatch.logs import log_event, setup_logging

    setup_logging(log_level.upper())
    config, ctx = build_context(config_file, host=host)
    host = host or config.console.host
    port = port or config.console.port
    created = "rebuilding it from Kafka" if ctx.store.created else "continuing from its offsets"
    log_event(log, logging.INFO, "console_started", url=f"http://{host}:{port}/", store=str(ctx.store.path),
              store_state=created, token_required=ctx.token is not None)
    click.echo(f"newswatch console at http://{host}:{port}/ (store {ctx.store.path}, {created})", err=True)
    uvicorn.run(create_app(ctx), host=host, port=port, log_level="warning", access_log=False,
                proxy_headers=False, server_header=False,
                timeout_graceful_shutdown=2)  # open live streams never hold up a stop
