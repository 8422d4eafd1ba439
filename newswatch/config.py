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
import os
from pathlib import Path

import pydantic

from alerts.settings import AlertsSettings
from console.settings import ConsoleSettings
from ingest.settings import IngestSettings
from newswatch.errors import ConfigError, ConfigProblem
from newswatch.kafka_settings import KafkaSettings
from newswatch.stack.settings import UpSettings
from newswatch.yamlconf import StrictModel, load_file, parse_yaml, read_config_text
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


CONFIG_ENV = "NEWSWATCH_CONFIG"


def config_path(path: str | Path | None) -> Path:
    """Find newswatch.yaml: the given file (or the file inside the given folder), else the one
    NEWSWATCH_CONFIG names, else the demo in the source tree's seeds/. An installed package has
    no seeds/ folder: then, with neither given, a ConfigError says both ways to name one."""
    if path is None:
        path = os.environ.get(CONFIG_ENV) or None
    if path is None:
        default = SEEDS_DIR / CONFIG_FILENAME
        if not default.is_file():
            raise ConfigError.single(
                CONFIG_FILENAME, f"no config file given and no default at {default}: pass --config PATH "
                                 f"(a newswatch.yaml or its folder) or set {CONFIG_ENV}=PATH")
        return default
    path = Path(path)
    return path / CONFIG_FILENAME if path.is_dir() else path


def load_config(path: str | Path | None = None) -> AppConfig:
    """Load and validate newswatch.yaml (not the files it names; see collect_problems)."""
    file = config_path(path)
    config = load_file(file, AppConfig)
    return config.model_copy(update={"base_dir": file.parent})


def pack_topic_ids(path: Path) -> set[str]:
    """The topic ids the packs in `path` (a folder of *.yaml, or one file) declare.

    Read from the raw YAML, so a pack with other problems still says which topics it defines
    (those problems are reported by the watchlist checker).
    """
    files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file()
                   and not p.name.startswith(".")) if path.is_dir() else [path]
    ids: set[str] = set()
    for file in files:
        try:
            data, _ = parse_yaml(read_config_text(file), str(file))
        except ConfigError:
            continue
        topics = data.get("topics") if isinstance(data, dict) else None
        for topic in topics if isinstance(topics, list) else ():
            if isinstance(topic, dict) and isinstance(topic.get("id"), str):
                ids.add(topic["id"])
    return ids


def subscription_topic_problems(config: AppConfig) -> list[ConfigProblem]:
    """Subscriptions and silences naming a topic that no configured pack defines (file:line each).

    Empty when either file is not configured or missing (those are reported elsewhere).
    """
    from alerts.subscriptions import topic_problems

    packs, subs = config.resolve(config.watchlists), config.resolve(config.subscriptions)
    if packs is None or subs is None or not packs.exists() or not subs.is_file():
        return []
    known = pack_topic_ids(packs)
    if not known:
        return []  # no readable pack: the watchlist checker says so
    try:
        text = read_config_text(subs)
    except ConfigError:
        return []
    return topic_problems(text, str(subs), known)


def _named_files(path: str | Path | None) -> AppConfig | None:
    """The files a newswatch.yaml names, read from its raw YAML when the file as a whole is invalid,
    so that a typo in one stage's settings does not hide the problems of the other files."""
    try:
        file = config_path(path)
        data, _ = parse_yaml(read_config_text(file), str(file))
    except ConfigError:
        return None
    if not isinstance(data, dict):
        return None
    named = {key: Path(data[key]) for key in ("feeds", "watchlists", "subscriptions") if isinstance(data.get(key), str)}
    return AppConfig(**named).model_copy(update={"base_dir": file.parent}) if named else None


def collect_problems(path: str | Path | None = None) -> list[ConfigProblem]:
    """Validate newswatch.yaml and every file it names; every problem, not just the first."""
    problems: list[ConfigProblem] = []
    try:
        config = load_config(path)
    except ConfigError as exc:
        problems.extend(exc.problems)
        config = _named_files(path)
        if config is None:
            return problems
    for key in ("feeds", "watchlists", "subscriptions"):
        target = config.resolve(getattr(config, key))
        if target is None:
            continue
        if not target.exists():
            problems.append(ConfigProblem(str(config_path(path)), None, None, key, f"{target} does not exist"))
        elif key in FILE_CHECKERS:
            module_name, function = FILE_CHECKERS[key].split(":")
            problems.extend(getattr(importlib.import_module(module_name), function)(target))
    problems.extend(subscription_topic_problems(config))
    # Subscriptions' countries/systems filters must name what the watchlists' gazetteer knows.
    subscriptions, watchlists = config.resolve(config.subscriptions), config.resolve(config.watchlists)
    if subscriptions is not None and watchlists is not None and subscriptions.exists() and watchlists.exists():
        from alerts.subscriptions import entity_problems

        problems.extend(entity_problems(subscriptions, watchlists if watchlists.is_dir() else watchlists.parent))
    return problems


def secret_problems(path: str | Path | None = None, environ=None, extra: tuple[str, ...] = (),
                    required: tuple[str, ...] = ()) -> list[ConfigProblem]:
    """Every environment variable the enabled subscriptions name (plus `extra`, signing secrets such
    as the sink's, and `required`, plain values such as the console's token) that is empty, unset
    or, for a signing secret, malformed. Names only: values are never shown.

    Empty when the config itself is invalid (`collect_problems` reports that)."""
    from alerts.signing import BadSecretError, signing_key
    from alerts.subscriptions import load_subscriptions
    from newswatch.secrets import Secret

    env = os.environ if environ is None else environ
    try:
        config = load_config(path)
        subs_path = config.resolve(config.subscriptions)
        subs = load_subscriptions(subs_path) if subs_path is not None else None
    except ConfigError:
        return []
    found: list[ConfigProblem] = []
    where = str(subs_path) if subs_path is not None else str(config_path(path))
    wanted: list[tuple[str, str, bool]] = [(name, "named by --secret-env", True) for name in extra]
    wanted.extend((name, "named by --require-env", False) for name in required)
    for sub in subs.subscriptions if subs is not None else ():
        if not sub.enabled:
            continue
        if sub.url_env:
            wanted.append((sub.url_env, f"url_env of subscription {sub.name}", False))
        if sub.secret_env:
            wanted.append((sub.secret_env, f"secret_env of subscription {sub.name}", True))
        wanted.extend((env_name, f"headers_env {header} of subscription {sub.name}", False)
                      for header, env_name in sub.headers_env.items())
    for name, purpose, signing in dict.fromkeys(wanted):
        value = env.get(name)
        if not value:
            found.append(ConfigProblem(where, None, None, "", f"environment variable {name} is empty or not set "
                                                              f"({purpose})"))
        elif signing:
            try:
                signing_key(Secret(value, name))
            except BadSecretError as exc:
                found.append(ConfigProblem(where, None, None, "", f"{exc} ({purpose})"))
    return found

