"""What the alerts stage keeps in Kafka: pending deliveries (state topic), dead letters (alerts DLQ)
and Matches routed to a subscription's owner (routed topic).

Pending deliveries live on the compacted `<prefix>alerts.state` topic, keyed `pending/<webhook-id>`,
next to story, throttle and disabled-subscription state; a finished delivery is a tombstone. Every
record of one subscription, routed or state, is on the partition `subscription_partition()` gives.
Nothing here holds a URL, a header value or a secret: only subscription names.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import pydantic

from kafka.partitioner.default import murmur2

from newswatch.schemas import Match, Record, TopicHit, UtcDatetime

PENDING_SCHEMA = "newswatch.alert_delivery/v1"
ALERT_DEAD_LETTER_SCHEMA = "newswatch.alert_dead_letter/v1"


class PendingDelivery(Record):
    """One alert on its way to one subscription, with its retry bookkeeping."""

    SCHEMA: ClassVar[str] = PENDING_SCHEMA
    schema_: Literal["newswatch.alert_delivery/v1"] = pydantic.Field(default=PENDING_SCHEMA, alias="schema")
    id: str  # the webhook-id
    subscription: str
    kind: Literal["alert", "digest", "test"] = "alert"
    story_id: str | None = None
    body: str  # the JSON body (newswatch.alert / newswatch.digest); chat formats are rendered from it
    created_at: UtcDatetime
    next_attempt_at: UtcDatetime
    attempts: int = 0
    first_attempt_at: UtcDatetime | None = None
    last_attempt_at: UtcDatetime | None = None
    last_status: int | None = None
    last_error: str | None = None


class AlertDeadLetter(Record):
    """A delivery that will not be retried automatically: the alert, why, and what was tried."""

    SCHEMA: ClassVar[str] = ALERT_DEAD_LETTER_SCHEMA
    schema_: Literal["newswatch.alert_dead_letter/v1"] = pydantic.Field(default=ALERT_DEAD_LETTER_SCHEMA,
                                                                         alias="schema")
    id: str
    subscription: str
    kind: Literal["alert", "digest", "test"] = "alert"
    story_id: str | None = None
    body: str
    reason: str  # "http_404", "retries_exhausted", "subscription_disabled", ...
    status: int | None = None
    error: str | None = None
    attempts: int
    created_at: UtcDatetime
    first_attempt_at: UtcDatetime | None = None
    last_attempt_at: UtcDatetime | None = None
    dead_at: UtcDatetime

    @classmethod
    def from_pending(cls, pending: PendingDelivery, reason: str, now) -> "AlertDeadLetter":
        return cls(id=pending.id, subscription=pending.subscription, kind=pending.kind,
                   story_id=pending.story_id, body=pending.body, reason=reason, status=pending.last_status,
                   error=pending.last_error, attempts=pending.attempts, created_at=pending.created_at,
                   first_attempt_at=pending.first_attempt_at, last_attempt_at=pending.last_attempt_at,
                   dead_at=now)


ROUTED_SCHEMA = "newswatch.alert_routed/v1"


class Route(pydantic.BaseModel):
    """One subscription a Match goes to, with the topics that subscription keeps."""

    model_config = pydantic.ConfigDict(frozen=True, extra="ignore")
    subscription: str
    topics: tuple[TopicHit, ...]


class RoutedMatch(Record):
    """A Match on its way to the owner of one partition of `<prefix>alerts.routed`: the subscriptions on
    that partition that want it (after filters and silences), each with the topics it keeps. One record
    per partition, however many subscriptions: the article text is dropped, as no alert carries it.
    """

    SCHEMA: ClassVar[str] = ROUTED_SCHEMA
    schema_: Literal["newswatch.alert_routed/v1"] = pydantic.Field(default=ROUTED_SCHEMA, alias="schema")
    match: Match
    routes: tuple[Route, ...]


def subscription_partition(subscription: str, partitions: int) -> int:
    """The partition of `<prefix>alerts.routed` and `<prefix>alerts.state` that holds everything of one
    subscription: Kafka's default partitioner (murmur2 of the name), so it is stable across processes,
    restarts and versions as long as the partition count is."""
    return (murmur2(subscription.encode("utf-8")) & 0x7FFFFFFF) % partitions
