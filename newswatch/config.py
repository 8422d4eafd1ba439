"""The top-level config file, newswatch.yaml, which names the other config files.

    kafka:            { bootstrap_servers, topic_prefix }
    feeds:            feeds file (ingest)
    watchlists:       folder of topic packs (processors)
    subscriptions:    subscriptions file (alerts)
    ingest, process, alerts:  each stage's own settings (docs/<stage>.md)
    console:          the web console (docs/console.md)

Relative paths are resolved against the folder of newswatch.yaml. `collect_problems()`
validates the top-level file and every file it names, and returns all problems found.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pydantic

from alerts.settings import AlertsSettings
from console.settings import ConsoleSettings
from ingest.settings import IngestSettings
from newswatch.errors import ConfigError, ConfigProblem
from newswatch.kafka_settings import KafkaSettings
from newswatch.stack.settings import UpSettings
from newswatch.yamlconf import StrictModel, load_file
from processors.settings import ProcessSettings

CONFIG_FILENAME = "newswatch.yaml"
SEEDS_DIR = Path(__file__).resolve().parent.parent / "seeds"

# Each file newswatch.yaml names is validated by its own stage:
# key -> "module:function", where function(path) -> list[ConfigProblem].
FILE_CHECKERS: dict[str, str] = {
    "watchlists": "processors.detection.watchlist:problems",
    "feeds": "ingest.feeds_config:problems",
    "subscriptions": "alerts.subscriptions:problems",
}


class AppConfig(StrictModel):
    kafka: KafkaSettings = KafkaSettings()
    feeds: Path | None = None
    watchlists: Path | None = None
    subscriptions: Path | None = None
    ingest: IngestSettings = IngestSettings()
    process: ProcessSettings = ProcessSettings()
    alerts: AlertsSettings = AlertsSettings()
    up: UpSettings = UpSettings()
    console: ConsoleSettings = ConsoleSettings()
    base_dir: Path = pydantic.Field(default=Path("."), exclude=True)

    def resolve(self, path: Path | None) -> Path | None:
        """A path from the config, relative to the config file's folder."""
        if path is None:
            return None
        return path if path.is_absolute() else self.base_dir / path


def config_path(path: str | Path | None) -> Path:
    """Find newswatch.yaml: the given file, or the file inside the given folder, or the seeds default."""
    if path is None:
        return SEEDS_DIR / CONFIG_FILENAME
    path = Path(path)
    return path / CONFIG_FILENAME if path.is_dir() else path


def load_config(path: str | Path | None = None) -> AppConfig:
    """Load and validate newswatch.yaml (not the files it names; see collect_problems)."""
    file = config_path(path)
    config = load_file(file, AppConfig)
    return config.model_copy(update={"base_dir": file.parent})


def collect_problems(path: str | Path | None = None) -> list[ConfigProblem]:
    """Validate newswatch.yaml and every file it names; every problem, not just the first."""
    try:
        config = load_config(path)
    except ConfigError as exc:
        return exc.problems
    problems: list[ConfigProblem] = []
    for key in ("feeds", "watchlists", "subscriptions"):
        target = config.resolve(getattr(config, key))
        if target is None:
            continue
        if not target.exists():
            problems.append(ConfigProblem(str(config_path(path)), None, None, key, f"{target} does not exist"))
        elif key in FILE_CHECKERS:
            module_name, function = FILE_CHECKERS[key].split(":")
            problems.extend(getattr(importlib.import_module(module_name), function)(target))
    return problems
