"""The `ingest:` section of newswatch.yaml: limits, politeness and where the state file lives.

Every field has a default, so a newswatch.yaml without an `ingest:` section is valid.
"""

from __future__ import annotations

from pathlib import Path

import pydantic

from newswatch.netguard import AllowedNetwork
from newswatch.yamlconf import StrictModel

DEFAULT_USER_AGENT = "newswatch/0.1 (+https://github.com/newswatch/newswatch; feed poller)"


class IngestSettings(StrictModel):
    """Stage settings for the poller; see docs/ingest.md for what each one defends against."""

    allow_private_networks: bool = pydantic.Field(
        default=False, description="deprecated (use allow_networks): permit every private range, never metadata")
    allow_networks: tuple[AllowedNetwork, ...] = pydantic.Field(
        default=(), description="networks feeds and pages may be fetched from despite the address guard")
    state_dir: Path = pydantic.Field(
        default=Path(".newswatch/ingest"), description="folder of the state file; relative to newswatch.yaml")
    concurrency: int = pydantic.Field(default=50, ge=1, le=1000, description="fetches in flight, all hosts")
    per_host: int = pydantic.Field(default=2, ge=1, le=100, description="fetches in flight per host")
    max_body_bytes: int = pydantic.Field(default=15 * 1024 * 1024, ge=1024,
                                         description="cap on the decoded body, enforced while streaming")
    fetch_deadline_s: float = pydantic.Field(default=30.0, gt=0, le=600,
                                             description="total time for one fetch, redirects included")
    connect_timeout_s: float = pydantic.Field(default=10.0, gt=0, le=120)
    max_redirects: int = pydantic.Field(default=3, ge=0, le=10)
    user_agent: str = pydantic.Field(default=DEFAULT_USER_AGENT, min_length=1)
    interval_floor_s: float = pydantic.Field(default=60.0, ge=1, description="never poll a feed more often")
    interval_ceiling_s: float = pydantic.Field(default=3600.0, ge=1, description="never poll a feed less often")
    max_backoff_s: float = pydantic.Field(default=6 * 3600.0, ge=1, description="longest wait after errors")
    max_server_delay_s: float = pydantic.Field(
        default=24 * 3600.0, ge=1, description="cap on Retry-After / max-age / ttl a server may ask for")
    parse_workers: int = pydantic.Field(default=2, ge=1, le=64, description="feed parser processes")
    parse_budget_s: float = pydantic.Field(default=20.0, gt=0, le=600, description="time to parse one document")
    max_title_chars: int = pydantic.Field(default=1000, ge=10)
    max_text_chars: int = pydantic.Field(default=20_000, ge=100)
    max_summary_chars: int = pydantic.Field(default=2_000, ge=100)
    seen_retention_days: int = pydantic.Field(default=180, ge=1,
                                              description="forget ids not sighted for this long")
    # Article pages (ingest/pages.py): fetched for entries whose feed text is short.
    full_text_min_chars: int = pydantic.Field(
        default=600, ge=0, le=100_000, description="feed text shorter than this (plain text) fetches the page")
    page_wait_s: float = pydantic.Field(
        default=20.0, gt=0, le=600, description="longest an article waits for its page before going out with feed text")
    page_concurrency: int = pydantic.Field(default=10, ge=1, le=500, description="page fetches in flight in total")
    page_max_bytes: int = pydantic.Field(default=5 * 1024 * 1024, ge=1024,
                                         description="cap on a page's decoded body")
    page_deadline_s: float = pydantic.Field(default=15.0, gt=0, le=600,
                                            description="total time for one page fetch, redirects included")
    extract_budget_s: float = pydantic.Field(default=5.0, gt=0, le=120,
                                             description="time to extract one page's text")
    extract_workers: int = pydantic.Field(default=1, ge=1, le=64,
                                          description="page extraction processes (apart from the feed parsers)")
    page_retry_after_max_s: float = pydantic.Field(
        default=3600.0, ge=1, description="cap on how long a host's Retry-After stops page fetches to it")
    # Several pollers sharing the feeds through Kafka (ingest/shared.py, docs/ingest.md).
    shared: bool = pydantic.Field(
        default=False, description="share the feeds with the other `newswatch ingest` processes of this topic "
                                   "prefix: each feed is polled by one of them; state lives on Kafka, not state_dir")
    feed_partitions: int = pydantic.Field(
        default=12, ge=1, le=256, description="partitions of the feeds and feed-state topics when created "
                                              "(at most this many pollers get work)")
    session_timeout_s: float = pydantic.Field(
        default=10.0, ge=6, le=300, description="a poller silent this long loses its feeds to the others")
    handover_grace_s: float = pydantic.Field(
        default=20.0, gt=0, le=600, description="how long a poller giving feeds away waits for its polls "
                                                 "and their articles to finish")

    @pydantic.field_validator("interval_ceiling_s")
    @classmethod
    def _ceiling_above_floor(cls, value: float, info: pydantic.ValidationInfo) -> float:
        floor = info.data.get("interval_floor_s")
        if floor is not None and floor > value:  # reported on the ceiling's line
            raise ValueError(f"interval_floor_s ({floor:g}) is above interval_ceiling_s ({value:g})")
        return value
