"""The `up:` section of newswatch.yaml: what `newswatch up` runs besides the four stages.

    up:
      demo_feeds: { dir: demo-feeds, port: 8788 }   # omit to serve no demo feeds (real feeds)
      sink: { port: 8787 }                          # `sink: null` runs no local sink
      metrics_ports: { ingest: 9101, process: 9102, alerts: 9103 }
      console: true                                 # the web console; its address is in `console:`
"""

from __future__ import annotations

from pathlib import Path

import pydantic

from newswatch.yamlconf import StrictModel

Port = pydantic.conint(ge=1, le=65535)


class DemoFeedsSettings(StrictModel):
    """A folder of feed files served on 127.0.0.1 while `up` runs (feeds.yaml points at it)."""

    dir: Path = Path("demo-feeds")
    port: Port = 8788


class SinkSettings(StrictModel):
    """The local webhook receiver; subscriptions.yaml must send to http://127.0.0.1:<port>/."""

    port: Port = 8787
    secret_env: str = "NEWSWATCH_SINK_SECRET"


class MetricsPorts(StrictModel):
    """Where each stage serves Prometheus metrics (the status line reads them); 0 turns one off."""

    ingest: pydantic.conint(ge=0, le=65535) = 9101
    process: pydantic.conint(ge=0, le=65535) = 9102
    alerts: pydantic.conint(ge=0, le=65535) = 9103


class UpSettings(StrictModel):
    demo_feeds: DemoFeedsSettings | None = None
    sink: SinkSettings | None = SinkSettings()
    metrics_ports: MetricsPorts = MetricsPorts()
    console: bool = pydantic.Field(default=True, description="run the web console (the `console:` section)")
