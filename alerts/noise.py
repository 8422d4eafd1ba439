"""Noise control, after Alertmanager: one alert per (subscription, story), grouped follow-ups, throttle.

A story's state moves through pure functions that take `now` and return a *reason*:
  observe(state, subscription, match, topics, now, grouping) -> (state, reason)
      "first"      a new story; its alert is due after `grouping.wait` (to gather sources)
      "grouped"    something new, absorbed into an alert that is already due/waiting
      "changed"    new topics or sources since the last alert; a follow-up is due no sooner
                   than `grouping.interval` after that alert
      "suppressed" nothing the subscriber has not already been told
  release(state, now) marks the due alert as sent.
Throttle (per subscription, sliding hour): admit() -> "admitted" or "throttled"; throttled alerts
are held and released later as one digest by take_digest().
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

import pydantic

from alerts.settings import GroupingSettings
from newswatch.schemas import Match, Source, TopicHit, UtcDatetime

ObserveReason = Literal["first", "grouped", "changed", "suppressed"]
HOUR = timedelta(hours=1)


class _State(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True, extra="ignore")


class StoryState(_State):
    """What one subscription knows and has been told about one story."""

    subscription: str
    story_id: str
    match: Match  # the first article that brought the story to this subscription
    topics: tuple[TopicHit, ...]
    sources: tuple[Source, ...]
    sent_topics: tuple[str, ...] = ()
    sent_sources: tuple[str, ...] = ()
    last_sent_at: UtcDatetime | None = None
    due_at: UtcDatetime | None = None
    alerts_sent: int = 0
    updated_at: UtcDatetime

    def is_due(self, now: datetime) -> bool:
        return self.due_at is not None and self.due_at <= now


def source_of(match: Match) -> Source:
    """The Match's own article as a Source entry."""
    return Source(article_id=match.id, source=match.source, url=match.url, feed_url=match.feed.url,
                  published_at=match.published_at)


def merge_topics(known: tuple[TopicHit, ...], new: tuple[TopicHit, ...]) -> tuple[TopicHit, ...]:
    """Union by topic id, keeping the higher-scoring hit; first-seen order."""
    merged: dict[str, TopicHit] = {hit.topic: hit for hit in known}
    for hit in new:
        if hit.topic not in merged or hit.score > merged[hit.topic].score:
            merged[hit.topic] = hit
    return tuple(merged.values())


def merge_sources(known: tuple[Source, ...], new: tuple[Source, ...]) -> tuple[Source, ...]:
    """Union by article id; first-seen order."""
    merged: dict[str, Source] = {s.article_id: s for s in known}
    for source in new:
        merged.setdefault(source.article_id, source)
    return tuple(merged.values())


def observe(state: StoryState | None, subscription: str, match: Match, topics: tuple[TopicHit, ...],
            now: datetime, grouping: GroupingSettings) -> tuple[StoryState, ObserveReason]:
    """Fold one routed Match into the story's state; see the module docstring for the reasons."""
    new_sources = (*match.sources, source_of(match))
    if state is None:
        # The article text is not part of any alert; keeping it would bloat every state record.
        kept = match.model_copy(update={"text": "", "topics": ()})
        state = StoryState(subscription=subscription, story_id=match.story_id, match=kept, topics=(), sources=(),
                           updated_at=now)
        merged = state.model_copy(update={"topics": merge_topics((), topics),
                                          "sources": merge_sources((), new_sources),
                                          "due_at": now + timedelta(seconds=grouping.wait)})
        return merged, "first"
    merged = state.model_copy(update={"topics": merge_topics(state.topics, topics),
                                      "sources": merge_sources(state.sources, new_sources),
                                      "updated_at": now})
    if state.alerts_sent == 0 or state.due_at is not None:
        return merged, "grouped"
    if not has_news(merged):
        return merged, "suppressed"
    earliest = (state.last_sent_at or now) + timedelta(seconds=grouping.interval)
    return merged.model_copy(update={"due_at": max(now, earliest)}), "changed"


def has_news(state: StoryState) -> bool:
    """True when the state holds topics or sources the subscriber has not been sent."""
    return bool({h.topic for h in state.topics} - set(state.sent_topics)
                or {s.article_id for s in state.sources} - set(state.sent_sources))


def release(state: StoryState, now: datetime) -> StoryState:
    """The state after its due alert went out (or was held for a digest): everything counts as told."""
    return state.model_copy(update={
        "sent_topics": tuple(h.topic for h in state.topics),
        "sent_sources": tuple(s.article_id for s in state.sources),
        "last_sent_at": now, "due_at": None, "alerts_sent": state.alerts_sent + 1, "updated_at": now})


def is_stale(state: StoryState, now: datetime, retention: timedelta) -> bool:
    """A story untouched for `retention` with nothing due can be forgotten."""
    return state.due_at is None and now - state.updated_at > retention


class HeldAlert(_State):
    """A throttled alert, summarised for the digest."""

    story_id: str
    title: str
    url: str | None
    source: str | None
    lang: str | None
    topics: tuple[str, ...]
    sources_count: int
    held_at: UtcDatetime


class ThrottleState(_State):
    """One subscription's alerts sent in the last hour, and the alerts held back."""

    subscription: str
    sent_at: tuple[UtcDatetime, ...] = ()
    held: tuple[HeldAlert, ...] = ()


def _window(state: ThrottleState, now: datetime) -> tuple[datetime, ...]:
    return tuple(t for t in state.sent_at if now - t < HOUR)


def admit(state: ThrottleState, now: datetime, max_per_hour: int | None
          ) -> tuple[ThrottleState, Literal["admitted", "throttled"]]:
    """Count an alert against the hour, or refuse it when `max_per_hour` were already sent."""
    if max_per_hour is None:
        return state, "admitted"
    window = _window(state, now)
    if len(window) >= max_per_hour:
        return state.model_copy(update={"sent_at": window}), "throttled"
    return state.model_copy(update={"sent_at": (*window, now)}), "admitted"


def hold(state: ThrottleState, alert: HeldAlert) -> ThrottleState:
    """Keep a throttled alert for the next digest."""
    return state.model_copy(update={"held": (*state.held, alert)})


def take_digest(state: ThrottleState, now: datetime, max_per_hour: int | None
                ) -> tuple[ThrottleState, tuple[HeldAlert, ...]]:
    """When alerts are held and the hour has room, release them all as one digest (counted once)."""
    if not state.held:
        return state, ()
    state, verdict = admit(state, now, max_per_hour)
    if verdict == "throttled":
        return state, ()
    return state.model_copy(update={"held": ()}), state.held
