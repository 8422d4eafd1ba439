"""The processor's verbs: `newswatch process` (run the worker) and `newswatch backtest` (try
watchlists on retained articles). Registered in newswatch.cli.STAGE_COMMANDS.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import click

from newswatch.config import load_config

DEFAULT_METRICS_PORT = 9102


@click.command("process")
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="newswatch.yaml (default: $NEWSWATCH_CONFIG, else seeds/newswatch.yaml)")
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=DEFAULT_METRICS_PORT, show_default=True,
              help="Prometheus metrics port; 0 disables")
def process(config_path: Path | None, metrics_port: int) -> None:
    """Run the processor worker: articles in, matches out, until SIGTERM or SIGINT."""
    from newswatch.logs import setup_logging
    from processors.detection import detect, load_watchlists
    from processors.worker import run_worker

    setup_logging()
    config = load_config(config_path)
    run_worker(config, metrics_port=metrics_port, detect=detect, load_watchlists=load_watchlists)


@click.command("backtest")
@click.option("--watchlists", "watchlists_dir", required=True,
              type=click.Path(path_type=Path, exists=True, file_okay=False),
              help="folder of draft topic packs to try")
@click.option("--since", default=None, metavar="DURATION",
              help="only articles appended in the last DURATION (e.g. 12h, 7d); default: all retained")
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="newswatch.yaml for the broker and topic names (default: $NEWSWATCH_CONFIG, else seeds/newswatch.yaml)")
@click.option("--samples", type=click.IntRange(0, 100), default=3, show_default=True,
              help="sample matches shown per topic")
def backtest(watchlists_dir: Path, since: str | None, config_path: Path | None, samples: int) -> None:
    """Run draft watchlists over the articles retained in Kafka; print what they would match.

    Reads with a consumer that belongs to no group, commits nothing and sends nothing.
    """
    from processors.backtest import format_tally, read_retained, run_backtest
    from processors.detection import detect, load_watchlists
    from processors.settings import parse_duration

    config = load_config(config_path)
    watchlist = load_watchlists(watchlists_dir)
    now = datetime.now(timezone.utc)
    try:
        start = now - parse_duration(since) if since else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None
    topic = config.kafka.topics.articles
    records = read_retained(config.kafka.bootstrap(), topic, since=start)
    tally = run_backtest(records, detect=detect, watchlist=watchlist, now=now,
                         similarity=config.process.story_similarity, story_window=config.process.story_window,
                         samples_per_topic=samples)
    click.echo(format_tally(tally, topic=topic, watchlist_version=watchlist.version, since=start))
