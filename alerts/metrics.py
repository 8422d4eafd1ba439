"""Prometheus metrics of the alerts stage, registered on a registry the caller owns.

Labels are subscription names, outcomes and reasons: never URLs, hosts' paths or secrets.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0, 300.0, 1800.0, 7200.0, 36000.0)


class AlertMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.registry = registry
        self.decisions = Counter("newswatch_alerts_decisions", "Routing and noise decisions by reason",
                                 ["subscription", "reason"], registry=registry)
        self.deliveries = Counter("newswatch_alerts_deliveries", "Delivery attempts by outcome and reason",
                                  ["subscription", "outcome", "reason"], registry=registry)
        self.retries_pending = Gauge("newswatch_alerts_retries_pending",
                                     "Deliveries waiting for their next attempt", registry=registry)
        self.dlq_records = Gauge("newswatch_alerts_dlq_records",
                                 "Records in the alerts DLQ (as of start, plus those written since)",
                                 registry=registry)
        self.latency = Histogram("newswatch_alerts_delivery_latency_seconds",
                                 "From an alert being due to its acceptance by the receiver",
                                 buckets=LATENCY_BUCKETS, registry=registry)
        self.disabled = Gauge("newswatch_alerts_subscription_disabled",
                              "1 when a subscription was disabled (HTTP 410)", ["subscription"], registry=registry)
        self.bad_records = Counter("newswatch_alerts_bad_records",
                                   "Match records that could not be decoded (sent to the articles DLQ)",
                                   registry=registry)
