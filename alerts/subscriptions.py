"""The subscriptions file: who gets which alerts, where, in what format, and what is silenced.

`load_subscriptions(path)` validates strictly (unknown keys, duplicate names, bad URLs and
durations are all reported with file:line:column); `problems(path)` is the `newswatch check`
hook. Secrets and secret URLs are *names of environment variables*, read by `resolve_endpoint`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

import pydantic

from alerts.settings import GroupingSettings
from newswatch.errors import ConfigError, ConfigProblem
from newswatch.schemas import UtcDatetime
from newswatch.secrets import Secret, secret_from_env
from newswatch.yamlconf import StrictModel, parse_yaml, position_of, problems_from_validation, read_config_text

# Severities the processors emit, weakest first; `min_severity` compares by this order.
SEVERITIES = ("info", "low", "medium", "high", "critical")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
# Headers newswatch sets itself; a subscription must not override the signature or framing.
_RESERVED_HEADERS = {"webhook-id", "webhook-timestamp", "webhook-signature", "content-type",
                     "content-length", "host", "user-agent"}


def _env_name(value: str) -> str:
    if not _ENV_NAME.match(value):
        raise ValueError(f"{value!r} is not an environment variable name (letters, digits, '_')")
    return value


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    return value


class SourceFilter(StrictModel):
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()


class ThrottleSettings(StrictModel):
    max_per_hour: int = pydantic.Field(ge=1, description="alerts beyond this in any hour are held for a digest")


class Subscription(StrictModel):
    """One receiver of alerts and the filter that decides what it receives."""

    name: str = pydantic.Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    url: str | None = None
    url_env: str | None = pydantic.Field(default=None, description="env var holding a URL that is itself a secret")
    format: Literal["json", "slack", "discord", "teams"] = "json"
    secret_env: str | None = None
    headers_env: dict[str, str] = pydantic.Field(default_factory=dict,
                                                 description="header name -> env var holding its value")
    topics: tuple[str, ...] | Literal["all"] = "all"
    languages: tuple[str, ...] = ()
    min_score: float = pydantic.Field(default=0.0, description="0 (unset): any score; else in (0, 1]")
    min_severity: Literal[SEVERITIES] | None = None  # type: ignore[valid-type]
    sources: SourceFilter = SourceFilter()
    # Entity filters (the gazetteer's ids, checked by `newswatch check`): a match must name one of
    # `countries` (all of them with countries_mode: all) and one of `systems`.
    countries: tuple[Annotated[str, pydantic.StringConstraints(pattern=r"^[A-Z]{2}$")], ...] = pydantic.Field(
        default=(), description="ISO 3166 alpha-2 codes, e.g. EG")
    countries_mode: Literal["any", "all"] = "any"
    systems: tuple[Annotated[str, pydantic.StringConstraints(min_length=1)], ...] = ()
    grouping: GroupingSettings | None = None
    throttle: ThrottleSettings | None = None
    enabled: bool = True

    @pydantic.field_validator("min_score")
    @classmethod
    def _score_range(cls, value: float) -> float:
        # A topic's score is in (0, 1]: a min_score outside it keeps everything or nothing, silently.
        if not 0 < value <= 1:
            raise ValueError(f"min_score must be greater than 0 and at most 1 (topic scores are in (0, 1]); "
                             f"leave it out to keep every score, got {value}")
        return value

    _url_ok = pydantic.field_validator("url")(lambda cls, v: v if v is None else _http_url(v))
    _envs_ok = pydantic.field_validator("url_env", "secret_env")(lambda cls, v: v if v is None else _env_name(v))

    @pydantic.field_validator("headers_env")
    @classmethod
    def _headers_ok(cls, value: dict[str, str]) -> dict[str, str]:
        for header, env in value.items():
            if not _HEADER_NAME.match(header):
                raise ValueError(f"{header!r} is not a valid header name")
            if header.lower() in _RESERVED_HEADERS:
                raise ValueError(f"{header!r} is set by newswatch and cannot be overridden")
            _env_name(env)
        return value

    @pydantic.model_validator(mode="after")
    def _one_url(self) -> "Subscription":
        if (self.url is None) == (self.url_env is None):
            raise ValueError("give exactly one of url or url_env")
        if self.format == "json" and self.secret_env is None:
            raise ValueError("format json needs secret_env: receivers must be able to verify signatures")
        return self

    def wants_topic(self, topic: str) -> bool:
        return self.topics == "all" or topic in self.topics

    def wants_entities(self, countries: set[str], systems: set[str]) -> str | None:
        """None when a match naming `countries` and `systems` passes the entity filters, else the reason."""
        if self.countries:
            wanted = set(self.countries)
            if not (wanted <= countries if self.countries_mode == "all" else wanted & countries):
                return "country_filtered"
        if self.systems and not set(self.systems) & systems:
            return "system_filtered"
        return None


class SilenceMatchers(StrictModel):
    """All given matchers must hold (case-insensitive); an absent matcher matches anything."""

    topic: str | None = None
    source: str | None = None
    language: str | None = None
    term: str | None = None

    @pydantic.model_validator(mode="after")
    def _not_empty(self) -> "SilenceMatchers":
        if not any((self.topic, self.source, self.language, self.term)):
            raise ValueError("a silence needs at least one of topic, source, language, term")
        return self


class Silence(StrictModel):
    """Mute matching alerts until `expires_at` (Alertmanager's silence, with news matchers)."""

    matchers: SilenceMatchers
    expires_at: UtcDatetime
    subscriptions: tuple[str, ...] = pydantic.Field(default=(), description="empty: every subscription")
    comment: str = ""

    def active(self, now: datetime) -> bool:
        return now < self.expires_at


class SubscriptionsFile(StrictModel):
    subscriptions: tuple[Subscription, ...] = ()
    silences: tuple[Silence, ...] = ()


@dataclass(frozen=True)
class Endpoint:
    """A subscription's resolved secrets: where to POST, the signing secret, extra headers."""

    url: Secret
    secret: Secret | None
    headers: dict[str, Secret]

    def all_secrets(self) -> list[Secret]:
        return [s for s in (self.url, self.secret, *self.headers.values()) if s is not None]


def resolve_endpoint(subscription: Subscription, environ=None) -> Endpoint:
    """Read a subscription's URL, secret and header values from the environment (MissingSecretError if unset)."""
    purpose = f"subscription {subscription.name}"
    url = (Secret(subscription.url, "") if subscription.url is not None
           else secret_from_env(subscription.url_env, f"{purpose} url", environ))
    secret = secret_from_env(subscription.secret_env, f"{purpose} signing secret", environ) \
        if subscription.secret_env else None
    headers = {name: secret_from_env(env, f"{purpose} header {name}", environ)
               for name, env in subscription.headers_env.items()}
    return Endpoint(url=url, secret=secret, headers=headers)


def load_subscriptions_text(text: str, source: str = "<string>") -> SubscriptionsFile:
    """Parse and validate a subscriptions document, reporting every problem with its position."""
    data, positions = parse_yaml(text, source)
    try:
        parsed = SubscriptionsFile.model_validate(data or {})
    except pydantic.ValidationError as exc:
        raise ConfigError(problems_from_validation(exc, source, positions)) from None
    problems = _cross_checks(parsed, source, positions)
    if problems:
        raise ConfigError(problems)
    return parsed


def _cross_checks(parsed: SubscriptionsFile, source: str, positions) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    seen: set[str] = set()
    for index, sub in enumerate(parsed.subscriptions):
        if sub.name in seen:
            line, col = position_of(positions, ("subscriptions", index, "name")) or (None, None)
            problems.append(ConfigProblem(source, line, col, f"subscriptions.{index}.name",
                                          f"duplicate subscription name {sub.name!r}"))
        seen.add(sub.name)
    for index, silence in enumerate(parsed.silences):
        for name in silence.subscriptions:
            if name not in seen:
                line, col = position_of(positions, ("silences", index, "subscriptions")) or (None, None)
                problems.append(ConfigProblem(source, line, col, f"silences.{index}.subscriptions",
                                              f"unknown subscription {name!r}"))
    return problems


def topic_problems(text: str, source: str, known: set[str]) -> list[ConfigProblem]:
    """Subscription topics and silence topics that no loaded pack defines, each with its file:line.

    Reads the raw document, so it reports even when other parts of the file fail validation.
    """
    try:
        data, positions = parse_yaml(text, source)
    except ConfigError:
        return []  # the syntax error is reported by the loader
    if not isinstance(data, dict):
        return []
    found: list[ConfigProblem] = []
    listed = ", ".join(sorted(known)) or "none"

    def report(loc: tuple, topic: object, what: str) -> None:
        line, col = position_of(positions, loc) or (None, None)
        found.append(ConfigProblem(source, line, col, ".".join(str(p) for p in loc),
                                   f"{what} {topic!r} is not a topic of any loaded pack (known: {listed})"))

    for index, sub in enumerate(data.get("subscriptions") or ()):
        topics = sub.get("topics") if isinstance(sub, dict) else None
        if isinstance(topics, list):
            for j, topic in enumerate(topics):
                if isinstance(topic, str) and topic not in known:
                    report(("subscriptions", index, "topics", j), topic, "topic")
    for index, silence in enumerate(data.get("silences") or ()):
        matchers = silence.get("matchers") if isinstance(silence, dict) else None
        topic = matchers.get("topic") if isinstance(matchers, dict) else None
        # silences match case-insensitively
        if isinstance(topic, str) and topic.lower() not in {k.lower() for k in known}:
            report(("silences", index, "matchers", "topic"), topic, "silenced topic")
    return found


def load_subscriptions(path: str | Path) -> SubscriptionsFile:
    """Read and validate a subscriptions file (ConfigError with file:line:column on any problem)."""
    return load_subscriptions_text(read_config_text(path), str(path))


def entity_problems(path: str | Path, watchlists: str | Path) -> list[ConfigProblem]:
    """Countries and systems the subscriptions name that the gazetteer of the watchlist folder
    `watchlists` does not know (such a filter would never match); for `newswatch check`."""
    from processors.detection.gazetteer import cldr_territories, load_gazetteer

    try:
        text = read_config_text(path)
        parsed = load_subscriptions_text(text, str(path))
    except ConfigError:
        return []  # reported by problems()
    _, positions = parse_yaml(text, str(path))
    gazetteer, found = load_gazetteer(Path(watchlists))
    if found:
        return []  # reported by the watchlist check
    out: list[ConfigProblem] = []
    known = {"countries": gazetteer.countries() if gazetteer else frozenset(),
             "systems": gazetteer.systems() if gazetteer else frozenset()}
    for index, sub in enumerate(parsed.subscriptions):
        for key in ("countries", "systems"):
            for k, value in enumerate(getattr(sub, key)):
                if value in known[key]:
                    continue
                line, col = position_of(positions, ("subscriptions", index, key, k)) or (None, None)
                if gazetteer is None:
                    reason = f"{value!r}: {key} filters need the gazetteer ({Path(watchlists) / 'gazetteer'} is missing)"
                elif key == "countries" and value not in cldr_territories():
                    reason = f"{value!r} is not an ISO 3166 alpha-2 country code"
                else:
                    sample = ", ".join(sorted(known[key])[:12])
                    reason = f"{value!r} is not in the gazetteer's {key} (it has {sample}, ...)"
                out.append(ConfigProblem(str(path), line, col, f"subscriptions.{index}.{key}.{k}", reason))
    return out


def problems(path: str | Path) -> list[ConfigProblem]:
    """Every problem in a subscriptions file (the `newswatch check` hook); empty when it is valid."""
    try:
        load_subscriptions(path)
    except ConfigError as exc:
        return exc.problems
    return []
