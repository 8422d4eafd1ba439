"""The `alerts:` section of newswatch.yaml: how the dispatcher delivers, retries and groups.

Subscriptions themselves live in their own file (see `alerts.subscriptions`); these are the
stage-wide knobs, all with defaults, so an absent section means sensible production behaviour.
"""

from __future__ import annotations

import pydantic

from alerts.durations import Duration
from newswatch.netguard import AllowedNetwork
from newswatch.yamlconf import StrictModel

# Standard-Webhooks-style back-off: quick retry for blips, then hours for real outages (~38 h in all).
DEFAULT_RETRY_SCHEDULE = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)


class GroupingSettings(StrictModel):
    """Alertmanager's group_wait/group_interval applied to stories."""

    wait: Duration = pydantic.Field(default=10.0, description="hold a new story this long to gather sources")
    interval: Duration = pydantic.Field(default=300.0, description="minimum time between alerts for one story")


class AlertsSettings(StrictModel):
    allow_private_networks: bool = pydantic.Field(
        default=False, description="deprecated (use allow_networks): every private range, never metadata")
    allow_networks: tuple[AllowedNetwork, ...] = pydantic.Field(
        default=(), description="networks webhooks may be sent to despite the address guard (a local sink)")
    retry_schedule: tuple[Duration, ...] = pydantic.Field(
        default=DEFAULT_RETRY_SCHEDULE, description="delay before each retry; its length is the retry budget")
    retry_jitter: float = pydantic.Field(default=0.1, ge=0.0, le=0.5,
                                         description="each delay varies by up to this fraction")
    max_retry_after: Duration = pydantic.Field(default=36000.0,
                                               description="a Retry-After longer than this is capped")
    timeout: Duration = pydantic.Field(default=15.0, gt=0)
    per_host_concurrency: int = pydantic.Field(default=4, ge=1, le=256)
    grouping: GroupingSettings = GroupingSettings()
    consumer_group: str | None = pydantic.Field(
        default=None, description="Kafka consumer group; default '<topic_prefix>alerts'")
