"""The live status of a running stack, and how `newswatch up` shows it and each alert.

`parse_metrics` reads the stages' Prometheus text; `summarize` turns those samples into the
few numbers a person watches (feeds polled, articles, matches by topic, alerts delivered,
errors); `format_alert` renders one alert from the sink's JSON-lines file. All pure.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

Sample = tuple[str, dict[str, str], float]


def parse_metrics(text: str) -> list[Sample]:
    """Every sample in a Prometheus text exposition as (name, labels, value); [] when unparsable."""
    try:
        return [(s.name, dict(s.labels), float(s.value))
                for family in text_string_to_metric_families(text) for s in family.samples]
    except (ValueError, TypeError):
        return []


def _total(samples: Iterable[Sample], name: str, **where: str) -> float:
    return sum(value for sample_name, labels, value in samples
               if sample_name == name and all(labels.get(k) == v for k, v in where.items()))


def _total_except(samples: Iterable[Sample], name: str, label: str, excluded: set[str]) -> float:
    return sum(value for sample_name, labels, value in samples
               if sample_name == name and labels.get(label) not in excluded)


def _by_label(samples: Iterable[Sample], name: str, label: str) -> dict[str, float]:
    counts: dict[str, float] = {}
    for sample_name, labels, value in samples:
        if sample_name == name and label in labels:
            counts[labels[label]] = counts.get(labels[label], 0.0) + value
    return counts


@dataclass(frozen=True)
class StatusSnapshot:
    """What the status line shows; `None` means that stage's metrics could not be read."""

    polls: float | None = None
    articles: float | None = None
    processed: float | None = None
    matches_by_topic: Mapping[str, float] = field(default_factory=dict)
    deliveries: float | None = None
    alerts_received: int = 0
    errors: float = 0.0
    restarts: int = 0
    rejected_reloads: float = 0.0  # watchlist edits the processor refused (it keeps the previous packs)

    def line(self) -> str:
        """One line, e.g. `polls 12 · articles 19 · matches arms_deal=4 … · alerts 9 · errors 0`."""
        def number(value: float | None) -> str:
            return "?" if value is None else f"{value:.0f}"

        topics = " ".join(f"{topic}={count:.0f}" for topic, count in sorted(self.matches_by_topic.items()))
        parts = [f"polls {number(self.polls)}", f"articles {number(self.articles)}",
                 f"processed {number(self.processed)}", f"matches {topics or '0'}",
                 f"alerts delivered {number(self.deliveries)}, received {self.alerts_received}",
                 f"errors {self.errors:.0f}"]
        if self.rejected_reloads:
            parts.append(f"watchlist edits rejected {self.rejected_reloads:.0f}")
        if self.restarts:
            parts.append(f"restarts {self.restarts}")
        return " · ".join(parts)


def summarize(stage_samples: Mapping[str, list[Sample] | None], alerts_received: int, restarts: int) -> StatusSnapshot:
    """Combine the samples of each stage (`None`: endpoint not reachable) into a StatusSnapshot.

    Metric names are those documented in docs/ingest.md, docs/processors.md and docs/alerts.md.
    """
    ingest = stage_samples.get("ingest")
    process = stage_samples.get("process")
    alerts = stage_samples.get("alerts")
    errors = rejected = 0.0
    if ingest is not None:
        errors += _total(ingest, "newswatch_ingest_feed_errors_total")
    if process is not None:
        errors += _total(process, "newswatch_processor_articles_total", outcome="dead_letter")
        errors += _total(process, "newswatch_processor_candidates_total", outcome="dead_letter")
        rejected = _total(process, "newswatch_processor_watchlist_reloads_total", result="invalid")
        errors += rejected
    if alerts is not None:
        errors += _total_except(alerts, "newswatch_alerts_deliveries_total", "outcome", {"delivered", "retry"})
    return StatusSnapshot(
        polls=None if ingest is None else _total(ingest, "newswatch_ingest_polls_total"),
        articles=None if ingest is None else _total(ingest, "newswatch_ingest_articles_published_total"),
        processed=None if process is None else _total(process, "newswatch_processor_articles_total"),
        matches_by_topic={} if process is None else _by_label(process, "newswatch_processor_matches_total", "topic"),
        deliveries=None if alerts is None else _total(alerts, "newswatch_alerts_deliveries_total",
                                                      outcome="delivered"),
        alerts_received=alerts_received, errors=errors, restarts=restarts, rejected_reloads=rejected)


_FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')


def log_fields(line: str) -> dict[str, str]:
    """The key=value fields of one log line (newswatch.logs format), quoted values unquoted."""
    fields = {}
    for key, value in _FIELD.findall(line):
        if value.startswith('"'):
            value = value[1:-1].replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\")
        fields[key] = value
    return fields


def rejected_reloads(lines: Iterable[str]) -> list[str]:
    """For each `watchlists_reload_failed` line of the processor's log, what `up` prints: why the
    edit was refused and that the previous watchlists stay in use."""
    shown = []
    for line in lines:
        if " watchlists_reload_failed " not in f" {line} ":
            continue
        reason = log_fields(line.split(" watchlists_reload_failed ", 1)[1]).get("reason", "").strip()
        shown.append("process: watchlist edit rejected; the previous watchlists stay in use until it is fixed:\n"
                     + "\n".join(f"  | {part}" for part in (reason.splitlines() or ["(no reason logged)"])))
    return shown


def alert_payload(line: str) -> dict | None:
    """The alert body in one line of the sink's JSON-lines file (bare, or under "payload"/"body");
    None for a duplicate delivery or a line that is not an alert."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not isinstance(record, dict) or record.get("duplicate"):
        return None  # the sink marks re-deliveries (same webhook-id) as duplicates: shown once
    for key in ("payload", "body", "alert"):
        if isinstance(record.get(key), dict):
            return record[key]
    return record if "topics" in record or record.get("type") == "newswatch.digest" else None


def matched_terms(payload: Mapping) -> list[str]:
    """The distinct evidence terms of all topics, in order of appearance."""
    terms: list[str] = []
    for topic in payload.get("topics") or ():
        for evidence in topic.get("evidence") or ():
            term = evidence.get("term")
            if term and term not in terms:
                terms.append(term)
    return terms


def format_alert(payload: Mapping) -> list[str]:
    """An alert as a few readable lines: title, topics, matched terms, source and link."""
    if payload.get("type") == "newswatch.digest":
        titles = [str((held.get("article") or {}).get("title") or held.get("title") or "?")
                  for held in payload.get("alerts") or ()]
        return [f"DIGEST {payload.get('count', len(titles))} alerts held back by the throttle of "
                f"{payload.get('subscription', '?')}", *(f"       - {title}" for title in titles[:10])]
    article = payload.get("article") or {}
    title = article.get("title") or "(untitled)"
    topics = ", ".join(f"{t.get('title') or t.get('topic')} ({t.get('score', 0):.2f})"
                       for t in payload.get("topics") or ())
    source = article.get("source") or (article.get("feed") or {}).get("title") or "?"
    count = payload.get("sources_count") or len(payload.get("sources") or ())
    if count > 1:
        source += f" (+{count - 1} more)"
    lines = [f"ALERT  {title}",
             f"       topics:  {topics or '-'}",
             f"       terms:   {' · '.join(matched_terms(payload)) or '-'}",
             f"       source:  {source}" + (f"  [{article['lang']}]" if article.get("lang") else ""),
             f"       link:    {article.get('url') or '-'}"]
    return lines
