"""The `newswatch` command line: one entry point, one verb per job.

Verbs are thin: they parse options, load config, call the stage's code and turn
NewswatchError into one clear message and a non-zero exit.
"""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path

import click

from newswatch import __version__
from newswatch.broker import local
from newswatch.errors import NewswatchError


# Verbs that live in the stage packages: name -> "module:attribute", imported only when used
# (faust and feedparser are slow to import, and `newswatch kafka status` should not wait for them).
STAGE_COMMANDS: dict[str, str] = {
    "up": "newswatch.stack.cli:up",
    "fetch": "ingest.cli:fetch",
    "ingest": "ingest.cli:ingest",
    "feeds": "ingest.cli:feeds",
    "alerts": "alerts.cli:alerts",
    "sink": "alerts.sink:sink",
    "detect": "processors.detection.cli:detect",
    "process": "processors.cli:process",
    "backtest": "processors.cli:backtest",
    "console": "console.cli:console",
}


class NewswatchGroup(click.Group):
    """Loads stage verbs lazily; prints NewswatchError as `newswatch: error: ...` and exits 1."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(STAGE_COMMANDS))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in STAGE_COMMANDS:
            module_name, attribute = STAGE_COMMANDS[name].split(":")
            return getattr(importlib.import_module(module_name), attribute)
        return super().get_command(ctx, name)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except NewswatchError as exc:
            click.echo(f"newswatch: error: {exc}", err=True)
            ctx.exit(1)


@click.group(cls=NewswatchGroup)
@click.version_option(__version__, prog_name="newswatch")
def main() -> None:
    """newswatch: news feeds in, signed topic alerts out."""


def _progress(message: str) -> None:
    click.echo(message, err=True)


# --- kafka -------------------------------------------------------------------------------

@main.group()
def kafka() -> None:
    """The local single-node Kafka broker (jars fetched once and cached)."""


def _broker_options(fn):
    fn = click.option("--data-dir", type=click.Path(path_type=Path), default=None,
                      help=f"broker data directory [env {local.DATA_ENV}; default ~/.local/share/newswatch/kafka]")(fn)
    fn = click.option("--port", type=click.IntRange(1, 65535), default=None,
                      help=f"client port on 127.0.0.1 [env {local.PORT_ENV}; default 9092]")(fn)
    return fn


def _broker(data_dir: Path | None, port: int | None, **kwargs) -> local.LocalBroker:
    controller_port = local.default_port(variable=local.CONTROLLER_PORT_ENV, default="")
    return local.LocalBroker(data_dir=data_dir or local.default_data_dir(), port=port or local.default_port(),
                             controller_port=controller_port, progress=_progress, **kwargs)


@kafka.command("start")
@_broker_options
@click.option("--heap-mb", type=click.IntRange(128, 65536), default=512, show_default=True,
              help="broker JVM heap")
@click.option("--timeout", type=float, default=120.0, show_default=True,
              help="seconds to wait for the broker to answer")
def kafka_start(data_dir, port, heap_mb, timeout) -> None:
    """Start the broker; return once it answers a metadata request."""
    broker = _broker(data_dir, port, heap_mb=heap_mb)
    began = time.monotonic()
    status, started = broker.start(timeout=timeout)
    if not started:
        click.echo(f"already running (pid {status.pid}) at {status.bootstrap}; started nothing")
        return
    click.echo(f"kafka ready at {status.bootstrap} in {time.monotonic() - began:.1f} s "
               f"(pid {status.pid}, data {status.data_dir})")


@kafka.command("fetch")
def kafka_fetch() -> None:
    """Download and verify the pinned broker jars into the cache (start does this too)."""
    from newswatch.broker import artifacts

    version = artifacts.KAFKA_VERSION
    jar_dir = artifacts.cache_root() / "kafka" / version / "jars"
    paths = artifacts.ensure_jars(artifacts.lock_for(version), jar_dir, progress=_progress)
    click.echo(f"Kafka {version}: {len(paths)} jars verified in {jar_dir}")


@kafka.command("stop")
@_broker_options
@click.option("--timeout", type=float, default=30.0, show_default=True,
              help="seconds to wait after SIGTERM before SIGKILL")
def kafka_stop(data_dir, port, timeout) -> None:
    """Stop the broker cleanly (SIGTERM, then SIGKILL after the timeout)."""
    broker = _broker(data_dir, port)
    if broker.stop(timeout=timeout):
        click.echo("stopped")
    else:
        click.echo("not running")


@kafka.command("status")
@_broker_options
def kafka_status(data_dir, port) -> None:
    """Print running/stopped, pid, bootstrap address, data directory and version."""
    status = _broker(data_dir, port).status()
    click.echo(status.describe())
    sys.exit(0 if status.running else 3)


# --- check -------------------------------------------------------------------------------

@main.command("check")
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option("--secrets", is_flag=True,
              help="also require every secret the enabled subscriptions name to be set in the environment")
@click.option("--secret-env", "secret_envs", multiple=True, metavar="NAME",
              help="with --secrets: another variable that must hold a signing secret (e.g. the sink's)")
@click.option("--require-env", "required_envs", multiple=True, metavar="NAME",
              help="with --secrets: another variable that must be set, not a signing secret (e.g. the console's token)")
def check(path: Path | None, secrets: bool, secret_envs: tuple[str, ...], required_envs: tuple[str, ...]) -> None:
    """Validate newswatch.yaml (PATH, else $NEWSWATCH_CONFIG, else seeds/) and every file it names;
    list all errors."""
    from newswatch.config import collect_problems, config_path

    problems = collect_problems(path)
    if secrets and not problems:
        from newswatch.config import secret_problems

        problems = secret_problems(path, extra=secret_envs, required=required_envs)
    for problem in problems:
        click.echo(str(problem), err=True)
    if problems:
        click.echo(f"{len(problems)} problem(s) found", err=True)
        sys.exit(1)
    click.echo(f"ok: {config_path(path)}")


if __name__ == "__main__":
    main()
