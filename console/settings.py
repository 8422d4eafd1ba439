"""The `console:` section of newswatch.yaml (docs/console.md). Every key has a default.

    console:
      host: 127.0.0.1          # anything else needs NEWSWATCH_CONSOLE_TOKEN in the environment
      port: 8790
      store: .newswatch/console/console.db   # relative to newswatch.yaml; rebuilt from Kafka when missing
      retention: 7d            # stories, deliveries and feed history older than this are dropped
"""

from __future__ import annotations

from pathlib import Path

import pydantic

from alerts.durations import Duration
from newswatch.yamlconf import StrictModel

TOKEN_ENV = "NEWSWATCH_CONSOLE_TOKEN"
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


class ConsoleSettings(StrictModel):
    host: str = pydantic.Field(default="127.0.0.1", min_length=1,
                               description="address to bind; beyond loopback an access token is required")
    port: int = pydantic.Field(default=8790, ge=1, le=65535)
    store: Path = pydantic.Field(default=Path(".newswatch/console/console.db"),
                                 description="the SQLite store; relative to newswatch.yaml")
    retention: Duration = pydantic.Field(default=7 * 86400.0, gt=0,
                                         description="how much history the store keeps (and rebuilds)")
    token_env: str = pydantic.Field(default=TOKEN_ENV, min_length=1,
                                    description="environment variable holding the access token")
    draft_history: int = pydantic.Field(default=50_000, ge=1, le=1_000_000,
                                        description="stored articles a draft pack is run over, newest first")

    @property
    def loopback(self) -> bool:
        return self.host in LOOPBACK_HOSTS or self.host.startswith("127.")
