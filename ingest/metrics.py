"""Prometheus metrics of the ingest stage, on a registry passed in (no module-level collectors).

Labels are bounded: outcome and reason are stable words; feeds are never a label (thousands of
feeds would make thousands of series), per-feed health is what `newswatch feeds` is for.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.polls = Counter("newswatch_ingest_polls_total", "Feed polls by outcome",
                             ["outcome"], registry=r)
        self.feed_errors = Counter("newswatch_ingest_feed_errors_total", "Failed polls by reason",
                                   ["reason"], registry=r)
        self.articles_queued = Counter("newswatch_ingest_articles_queued_total",
                                       "New articles queued for Kafka (first sighting)", registry=r)
        self.articles_published = Counter("newswatch_ingest_articles_published_total",
                                          "Articles acknowledged by the broker", registry=r)
        self.entries_skipped = Counter("newswatch_ingest_entries_skipped_total",
                                       "Entries already seen (re-poll or the same story in another feed)",
                                       registry=r)
        self.publish_errors = Counter("newswatch_ingest_publish_errors_total",
                                      "Failed Kafka sends or connections by reason", ["reason"], registry=r)
        self.fetch_seconds = Histogram("newswatch_ingest_fetch_seconds", "Time to fetch one feed",
                                       buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60), registry=r)
        self.parse_seconds = Histogram("newswatch_ingest_parse_seconds", "Time to parse one document",
                                       buckets=(0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 20), registry=r)
        self.outbox_pending = Gauge("newswatch_ingest_outbox_pending",
                                    "Articles waiting for the broker's acknowledgement", registry=r)
        self.feeds_total = Gauge("newswatch_ingest_feeds", "Enabled feeds", registry=r)
        self.feeds_failing = Gauge("newswatch_ingest_feeds_failing",
                                   "Feeds whose last poll failed", registry=r)
        self.broker_connected = Gauge("newswatch_ingest_broker_connected",
                                      "1 while the producer is connected to Kafka", registry=r)

        self.page_fetches = Counter("newswatch_ingest_page_fetches_total",
                                    "Article page reads by outcome (ok, failed, skipped) and reason",
                                    ["outcome", "reason"], registry=r)
        self.extract_seconds = Histogram("newswatch_ingest_extract_seconds", "Time to extract one page's text",
                                         buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5), registry=r)
        self.articles_by_text_source = Counter("newswatch_ingest_articles_text_source_total",
                                               "Articles whose page was wanted, by where their text came from "
                                               "(page, feed)", ["source"], registry=r)

    def serve(self, port: int, addr: str = "0.0.0.0"):
        """Serve /metrics on `port` in a background thread; returns (server, thread)."""
        return start_http_server(port, addr=addr, registry=self.registry)
