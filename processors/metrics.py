"""Prometheus metrics of the processor (served by `newswatch process --metrics-port`, default 9102).

    newswatch_processor_articles_total{outcome}      detection: candidate, no_topics, dead_letter
    newswatch_processor_candidates_total{outcome}    story stage: matched, duplicate, dead_letter, not_owned
    newswatch_processor_matches_total{topic}         matches produced per watchlist topic
    newswatch_processor_batch_seconds{stage}         time to process one batch (histogram)
    newswatch_processor_batch_size{stage}            records per batch (histogram)
    newswatch_processor_match_latency_seconds        article appended to Kafka -> its match sent
    newswatch_processor_consumer_lag{partition}      records on the articles topic not yet processed
    newswatch_processor_watchlist_reloads_total{result}  reloaded, invalid, same_rules
    newswatch_processor_watchlist_info{version}      1 for the live watchlist version
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from processors.pipeline import DetectionReport, EncodedDetection
from processors.story_stage import StoryReport


def consumer_lag(highwaters: Mapping[int, int | None], next_offsets: Mapping[int, int]) -> dict[int, int]:
    """Per partition, how many records sit between what was processed and the end of the log.

    `highwaters` is the offset the next appended record will get (None when not yet known);
    `next_offsets` is one past the last processed record. Unknown partitions are left out.
    """
    lag = {}
    for partition, highwater in highwaters.items():
        if highwater is None:
            continue
        lag[partition] = max(0, highwater - next_offsets.get(partition, 0))
    return lag


class ProcessorMetrics:
    """The processor's metrics, registered in the given registry (one per worker, none global)."""

    def __init__(self, registry: CollectorRegistry):
        self.registry = registry
        prefix = "newswatch_processor"
        self.articles = Counter(f"{prefix}_articles", "Article records handled, by outcome", ["outcome"],
                                registry=registry)
        self.matches = Counter(f"{prefix}_matches", "Matches produced, by watchlist topic", ["topic"],
                               registry=registry)
        self.candidates = Counter(f"{prefix}_candidates", "Candidate records handled by the story stage, by outcome",
                                  ["outcome"], registry=registry)
        self.batch_seconds = Histogram(f"{prefix}_batch_seconds", "Time to process one batch, by stage", ["stage"],
                                       buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10), registry=registry)
        self.batch_size = Histogram(f"{prefix}_batch_size", "Records per batch, by stage", ["stage"],
                                    buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000), registry=registry)
        self.match_latency = Histogram(f"{prefix}_match_latency_seconds",
                                       "From the article's append to the articles topic to its match being sent",
                                       buckets=(.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300), registry=registry)
        self.lag = Gauge(f"{prefix}_consumer_lag", "Articles topic records not yet processed", ["partition"],
                         registry=registry)
        self.reloads = Counter(f"{prefix}_watchlist_reloads", "Watchlist reload attempts, by result", ["result"],
                               registry=registry)
        self.watchlist = Gauge(f"{prefix}_watchlist_info", "The live watchlist version (value 1)", ["version"],
                               registry=registry)
        self._live_version: str | None = None

    def observe_detection(self, report: DetectionReport | EncodedDetection, size: int, seconds: float) -> None:
        self.batch_seconds.labels("detection").observe(seconds)
        self.batch_size.labels("detection").observe(size)
        for outcome, count in report.outcomes.items():
            self.articles.labels(outcome).inc(count)

    def observe_stories(self, report: StoryReport, size: int, seconds: float, now_ms: int) -> None:
        self.batch_seconds.labels("story").observe(seconds)
        self.batch_size.labels("story").observe(size)
        for outcome, count in report.outcomes.items():
            self.candidates.labels(outcome).inc(count)
        for topic, count in report.topics.items():
            self.matches.labels(topic).inc(count)
        for match in report.matches:
            self.match_latency.observe(max(0.0, now_ms / 1000 - match.detected_at.timestamp()))

    def observe_lag(self, lag: Mapping[int, int]) -> None:
        for partition, value in lag.items():
            self.lag.labels(str(partition)).set(value)

    def forget_lag(self, partition: int) -> None:
        """A partition this worker no longer holds: its lag is reported by the new owner."""
        try:
            self.lag.remove(str(partition))
        except KeyError:
            pass

    def set_watchlist(self, version: str) -> None:
        if version != self._live_version:
            if self._live_version is not None:
                self.watchlist.remove(self._live_version)
            self.watchlist.labels(version).set(1)
            self._live_version = version
