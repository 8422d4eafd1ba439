"""The `newswatch up` verb: validate the config, then hand over to the Stack orchestrator."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from newswatch.config import collect_problems, config_path, load_config
from newswatch.stack.runner import Console, Stack


@click.command("up")
@click.option("--config", "config_file", type=click.Path(path_type=Path), default=None,
              help="newswatch.yaml (or its folder) [default: $NEWSWATCH_CONFIG, else the demo in seeds/]")
@click.option("--run-dir", type=click.Path(path_type=Path), default=Path(".newswatch/up"), show_default=True,
              help="where the children's logs, the sink's alerts.jsonl and up.json go")
@click.option("--fresh", is_flag=True,
              help="start the demo afresh: forget what earlier runs saw (the run folder's state and the local "
                   "broker's data); the local broker must be stopped")
def up(config_file: Path | None, run_dir: Path, fresh: bool) -> None:
    """Run the whole pipeline on this machine until Ctrl-C: the local Kafka broker (unless one is
    configured), the demo feed server, ingest, process, alerts and a webhook sink that prints
    each alert."""
    problems = collect_problems(config_file)
    if problems:
        for problem in problems:
            click.echo(str(problem), err=True)
        click.echo(f"{len(problems)} problem(s) found; nothing started", err=True)
        sys.exit(1)
    path = config_path(config_file).resolve()
    config = load_config(path)
    console = Console(stream=sys.stdout, interactive=sys.stdout.isatty())
    console.say(f"newswatch up: config {path}")
    sys.exit(asyncio.run(Stack(config, path, run_dir.resolve(), console, fresh=fresh).run()))
