"""The feeds file (feeds.yaml): which feeds to poll, how often, in which language, with which tags.

    feeds:
      - url: https://example.org/rss.xml   # http or https
        name: Example News                  # shown in logs, `newswatch feeds` and Article.source
        lang: en                            # hint, used when neither entry nor feed declares one
        interval: 300                       # seconds; clamped to the ingest floor/ceiling at run time
        tags: [wire, en]                    # copied onto every article from this feed
        enabled: true
        full_text: auto                     # fetch the page when the feed's text is short; always | never

`load_feeds(path)` raises ConfigError listing every problem with file:line:column;
`problems(path)` returns them for `newswatch check`. Two entries with the same URL are an error.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import pydantic

from newswatch.errors import ConfigError, ConfigProblem
from newswatch.yamlconf import StrictModel, parse_yaml, position_of, read_config_text, validate

DEFAULT_INTERVAL_S = 300.0
_LANG = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*$")


class FeedConfig(StrictModel):
    """One feed to poll."""

    url: str
    name: str | None = None
    lang: str | None = None
    interval: float = pydantic.Field(default=DEFAULT_INTERVAL_S, gt=0, le=7 * 86400)
    tags: tuple[str, ...] = ()
    enabled: bool = True
    # Fetch each new entry's page for its text: when the feed's text is short (auto), for every
    # entry (always), or never. See ingest/pages.py.
    full_text: Literal["auto", "always", "never"] = "auto"

    @pydantic.field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip()
        try:
            parts = urlsplit(value)
        except ValueError as exc:
            raise ValueError(f"not a URL: {exc}") from None
        if parts.scheme.lower() not in ("http", "https"):
            raise ValueError(f"only http and https feeds can be polled, not {parts.scheme or 'a bare path'!r}")
        if not parts.hostname:
            raise ValueError("URL has no host")
        return value

    @pydantic.field_validator("lang")
    @classmethod
    def _language_tag(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not _LANG.match(value):
            raise ValueError(f"{value!r} is not a language tag such as en, ar or ru")
        return value.split("-")[0].split("_")[0].lower()

    @property
    def display_name(self) -> str:
        return self.name or urlsplit(self.url).hostname or self.url

    @property
    def host(self) -> str:
        return (urlsplit(self.url).hostname or "").lower()


class FeedsFile(StrictModel):
    feeds: tuple[FeedConfig, ...] = ()

    @property
    def enabled(self) -> tuple[FeedConfig, ...]:
        return tuple(feed for feed in self.feeds if feed.enabled)


def load_feeds_text(text: str, source: str = "<string>") -> FeedsFile:
    """Parse and validate a feeds file's text; ConfigError lists every problem with its line."""
    data, positions = parse_yaml(text, source)
    feeds_file = validate(data, FeedsFile, source, positions)
    duplicates = []
    first_index: dict[str, int] = {}
    for index, feed in enumerate(feeds_file.feeds):
        if feed.url in first_index:
            line, col = position_of(positions, ("feeds", index, "url")) or (None, None)
            first_line = (position_of(positions, ("feeds", first_index[feed.url])) or (None,))[0]
            duplicates.append(ConfigProblem(source, line, col, f"feeds.{index}.url",
                                            f"{feed.url} is already listed (line {first_line})"))
        else:
            first_index[feed.url] = index
    if duplicates:
        raise ConfigError(duplicates)
    return feeds_file


def load_feeds(path: str | Path) -> FeedsFile:
    """Read and validate a feeds file."""
    return load_feeds_text(read_config_text(path), str(path))


def problems(path: str | Path) -> list[ConfigProblem]:
    """Every problem in a feeds file (the FILE_CHECKERS entry for `newswatch check`)."""
    try:
        load_feeds(path)
    except ConfigError as exc:
        return exc.problems
    return []
