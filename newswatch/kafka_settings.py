"""Where the Kafka broker is and what the topics are called.

The bootstrap address comes from NEWSWATCH_KAFKA_BOOTSTRAP when set, else from the config
file, else the local broker's default address. Topic names share a configurable prefix.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

import pydantic

from newswatch.yamlconf import StrictModel

BOOTSTRAP_ENV = "NEWSWATCH_KAFKA_BOOTSTRAP"
DEFAULT_PORT = 9092
DEFAULT_BOOTSTRAP = f"127.0.0.1:{DEFAULT_PORT}"
_TOPIC_PREFIX = re.compile(r"^[A-Za-z0-9._-]{0,200}$")


class KafkaSettings(StrictModel):
    """The `kafka:` section of newswatch.yaml."""

    bootstrap_servers: str | None = pydantic.Field(
        default=None, description="host:port[,host:port]; unset means the local broker")
    topic_prefix: str = "newswatch."
    partitions: int = pydantic.Field(
        default=3, ge=1, le=256,
        description="partitions of the articles and matches topics when a stage creates them (every stage "
                    "uses the same number, so whichever starts first creates them alike)")

    @pydantic.field_validator("topic_prefix")
    @classmethod
    def _prefix_is_legal(cls, value: str) -> str:
        if not _TOPIC_PREFIX.match(value):
            raise ValueError("may contain only letters, digits, '.', '_' and '-'")
        return value

    @pydantic.field_validator("bootstrap_servers")
    @classmethod
    def _bootstrap_has_ports(cls, value: str | None) -> str | None:
        if value is not None:
            for server in value.split(","):
                host, _, port = server.strip().rpartition(":")
                if not host or not port.isdigit():
                    raise ValueError(f"{server.strip()!r} is not host:port")
        return value

    def is_external(self, environ: Mapping[str, str] | None = None) -> bool:
        """True when a broker address was configured (so `newswatch up` must not start one)."""
        env = os.environ if environ is None else environ
        return bool(env.get(BOOTSTRAP_ENV) or self.bootstrap_servers)

    def bootstrap(self, environ: Mapping[str, str] | None = None) -> str:
        """The effective bootstrap address: environment, then config, then the local default."""
        env = os.environ if environ is None else environ
        return env.get(BOOTSTRAP_ENV) or self.bootstrap_servers or DEFAULT_BOOTSTRAP

    @property
    def topics(self) -> "Topics":
        return Topics(self.topic_prefix, self.partitions)


class Topics:
    """Topic names under one prefix (docs/contracts.md lists them)."""

    def __init__(self, prefix: str = "newswatch.", partitions: int = 3):
        self.prefix = prefix
        self.partitions = partitions  # for the articles and matches topics when a stage creates them

    def name(self, suffix: str) -> str:
        return f"{self.prefix}{suffix}"

    @property
    def articles(self) -> str:
        return self.name("articles")

    @property
    def matches(self) -> str:
        return self.name("matches")

    @property
    def candidates(self) -> str:
        """Matched articles on their way from detection to the story stage (processors)."""
        return self.name("candidates")

    @property
    def articles_dlq(self) -> str:
        return self.name("articles.dlq")

    @property
    def alerts_dlq(self) -> str:
        return self.name("alerts.dlq")

    def __repr__(self) -> str:
        return f"Topics(prefix={self.prefix!r})"
