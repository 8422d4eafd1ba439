"""Which subscriptions a Match goes to, and why (or why not): a pure match over its fields.

Evaluation order for each subscription (the first failing rule is the reason):
  1. `enabled: false`                      -> "disabled"
  2. language not in `languages`           -> "language_filtered"   (empty list = any language;
                                                                     an article with unknown language passes only then)
  3. source excluded / not included        -> "source_excluded" / "source_not_included"
                                              (the article's own source, case-insensitive)
  4. countries / systems filters (the match's entities): none of `countries` named (with
     countries_mode: all, not every one)   -> "country_filtered"; none of `systems` -> "system_filtered"
  5. topics kept = hits the subscription wants, with score >= min_score and severity >= min_severity;
     none kept                             -> "topic_filtered" / "score_below_min" / "severity_below_min"
  6. topics kept minus those an active silence matches; none left -> "silenced"
  7. otherwise                             -> "matched", with the kept topics.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from alerts.subscriptions import SEVERITIES, Silence, Subscription
from newswatch.schemas import Match, TopicHit


@dataclass(frozen=True)
class RouteDecision:
    """One subscription's verdict on one Match: deliver or not, why, and which topics it cares about."""

    subscription: str
    deliver: bool
    reason: str
    topics: tuple[TopicHit, ...] = ()
    silenced_topics: tuple[str, ...] = ()


def _fold(value: str | None) -> str:
    return (value or "").casefold()


def _severity_rank(severity: str) -> int:
    folded = _fold(severity)
    return SEVERITIES.index(folded) if folded in SEVERITIES else -1


def silence_matches(silence: Silence, match: Match, hit: TopicHit, subscription: str, now: datetime) -> bool:
    """True when `silence` is active, applies to `subscription`, and every matcher holds for this hit."""
    if not silence.active(now):
        return False
    if silence.subscriptions and subscription not in silence.subscriptions:
        return False
    m = silence.matchers
    if m.topic is not None and _fold(m.topic) != _fold(hit.topic):
        return False
    if m.language is not None and _fold(m.language) != _fold(match.lang):
        return False
    if m.source is not None:
        sources = {_fold(match.source)} | {_fold(s.source) for s in match.sources}
        if _fold(m.source) not in sources:
            return False
    if m.term is not None and _fold(m.term) not in {_fold(e.term) for e in hit.evidence}:
        return False
    return True


def route_one(match: Match, subscription: Subscription, silences: Iterable[Silence], now: datetime) -> RouteDecision:
    """The verdict of one subscription on one Match (rules in the module docstring)."""
    name = subscription.name
    if not subscription.enabled:
        return RouteDecision(name, False, "disabled")
    if subscription.languages and _fold(match.lang) not in {_fold(lang) for lang in subscription.languages}:
        return RouteDecision(name, False, "language_filtered")
    source = _fold(match.source)
    if source and source in {_fold(s) for s in subscription.sources.exclude}:
        return RouteDecision(name, False, "source_excluded")
    if subscription.sources.include and source not in {_fold(s) for s in subscription.sources.include}:
        return RouteDecision(name, False, "source_not_included")

    if subscription.countries or subscription.systems:
        countries = {e.id for e in match.entities if e.type == "country"}
        systems = {e.id for e in match.entities if e.type == "system"}
        refused = subscription.wants_entities(countries, systems)
        if refused is not None:
            return RouteDecision(name, False, refused)

    wanted = [hit for hit in match.topics if subscription.wants_topic(hit.topic)]
    if not wanted:
        return RouteDecision(name, False, "topic_filtered")
    scored = [hit for hit in wanted if hit.score >= subscription.min_score]
    if not scored:
        return RouteDecision(name, False, "score_below_min")
    if subscription.min_severity is not None:
        floor = SEVERITIES.index(subscription.min_severity)
        scored = [hit for hit in scored if _severity_rank(hit.severity) >= floor]
        if not scored:
            return RouteDecision(name, False, "severity_below_min")

    silences = tuple(silences)
    kept, silenced = [], []
    for hit in scored:
        if any(silence_matches(s, match, hit, name, now) for s in silences):
            silenced.append(hit.topic)
        else:
            kept.append(hit)
    if not kept:
        return RouteDecision(name, False, "silenced", silenced_topics=tuple(silenced))
    return RouteDecision(name, True, "matched", tuple(kept), tuple(silenced))


def route(match: Match, subscriptions: Iterable[Subscription], silences: Iterable[Silence],
          now: datetime) -> list[RouteDecision]:
    """One decision per subscription, in subscription order."""
    silences = tuple(silences)
    return [route_one(match, sub, silences, now) for sub in subscriptions]
