"""Which processes make up the stack and with which arguments (pure: no processes started here).

The same verbs with the same options run in docker-compose.yml; tests/stack checks both agree.
"""

from __future__ import annotations

import sys
from pathlib import Path

from newswatch.config import AppConfig
from newswatch.stack.settings import UpSettings
from newswatch.stack.supervisor import ChildSpec

STAGES = ("ingest", "process", "alerts")


def newswatch_argv(*args: str, python: str | None = None) -> tuple[str, ...]:
    """argv that runs `newswatch ARGS...` with this interpreter (no reliance on PATH)."""
    return (python or sys.executable, "-m", "newswatch", *args)


def plan_children(config_file: Path, settings: UpSettings, run_dir: Path,
                  python: str | None = None) -> list[ChildSpec]:
    """The supervised children, in start order: the sink first, so the first alert finds it.

    They run in `run_dir`, so whatever a stage writes relative to its working directory (faust's
    data folder) stays there and not in the user's folder."""
    specs: list[ChildSpec] = []
    if settings.sink is not None:
        specs.append(ChildSpec("sink", newswatch_argv(
            "sink", "--host", "127.0.0.1", "--port", str(settings.sink.port),
            "--out", str(run_dir / "alerts.jsonl"), "--secret-env", settings.sink.secret_env, python=python),
            log_path=run_dir / "logs" / "sink.log", cwd=run_dir))
    for stage in STAGES:
        port = getattr(settings.metrics_ports, stage)
        specs.append(ChildSpec(stage, newswatch_argv(
            stage, "--config", str(config_file), "--metrics-port", str(port), python=python),
            log_path=run_dir / "logs" / f"{stage}.log", cwd=run_dir))
    if settings.console:  # the web console: last, nothing waits for it (docs/console.md)
        specs.append(ChildSpec("console", newswatch_argv("console", "--config", str(config_file), python=python),
                               log_path=run_dir / "logs" / "console.log", cwd=run_dir))
    return specs


def ports_in_use(settings: UpSettings) -> dict[str, int]:
    """Every 127.0.0.1 port the stack will listen on, by what listens (0 = disabled, left out)."""
    ports = {f"{stage} metrics": getattr(settings.metrics_ports, stage) for stage in STAGES}
    if settings.sink is not None:
        ports["sink"] = settings.sink.port
    if settings.demo_feeds is not None:
        ports["demo feed server"] = settings.demo_feeds.port
    return {name: port for name, port in ports.items() if port}


def run_config(data: dict, config: AppConfig, run_dir: Path | None = None) -> dict:
    """The config the stages get from `up`: `data` (newswatch.yaml as parsed) with the paths made
    absolute (the copy lives in the run folder), ingest's state in `run_dir/ingest` and the
    console's store in `run_dir/console` unless the file names them, and, when demo feeds are
    served, ingest allowed to reach them on 127.0.0.1. The file itself keeps the address guard on
    for every other use."""
    derived = dict(data)
    for key in ("feeds", "watchlists", "subscriptions"):
        path = config.resolve(getattr(config, key))
        if path is not None:
            derived[key] = str(path)
    ingest = dict(derived.get("ingest") or {})
    if run_dir is not None and "state_dir" not in ingest:
        ingest["state_dir"] = str(run_dir / "ingest")  # all of a run's state under --run-dir
    else:
        ingest["state_dir"] = str(config.resolve(config.ingest.state_dir))
    if config.up.demo_feeds is not None:  # the demo server's address only, not every private range
        ingest["allow_networks"] = [*config.ingest.allow_networks, "127.0.0.1/32"]
    console = dict(derived.get("console") or {})
    if run_dir is not None and "store" not in console:
        console["store"] = str(run_dir / "console" / "console.db")
    else:
        console["store"] = str(config.resolve(config.console.store))
    derived["console"] = console
    derived["ingest"] = ingest
    return derived
