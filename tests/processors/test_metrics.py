"""Metrics: lag arithmetic and what one batch adds to the counters."""

from collections import Counter

import pytest
from prometheus_client import CollectorRegistry

from processors.match import build_match, detected_at_for
from processors.metrics import ProcessorMetrics, consumer_lag
from processors.pipeline import DetectionReport
from processors.story_stage import StoryReport
from tests.processors.factories import article, hit


@pytest.mark.parametrize("highwaters, next_offsets, lag", [
    ({0: 100}, {0: 100}, {0: 0}),
    ({0: 100, 1: 50}, {0: 90}, {0: 10, 1: 50}),
    ({0: None}, {0: 3}, {}),
    ({0: 5}, {0: 7}, {0: 0}),  # a highwater not refreshed yet never gives negative lag
])
def test_consumer_lag(highwaters, next_offsets, lag):
    assert consumer_lag(highwaters, next_offsets) == lag


def test_batches_add_outcomes_topics_sizes_and_latency_per_stage():
    registry = CollectorRegistry()
    metrics = ProcessorMetrics(registry)
    match = build_match(article("a", "t"), [hit("air_defense_system"), hit("arms_deal")], story_id="s",
                        sources=[], watchlist_version="v", detected_at=detected_at_for(1_000_000))
    metrics.observe_detection(DetectionReport(outcomes=Counter(candidate=2, no_topics=3)), size=5, seconds=0.02)
    metrics.observe_stories(StoryReport(matches=[match], outcomes=Counter(matched=1, duplicate=1),
                                        topics=Counter(air_defense_system=1, arms_deal=1)),
                            size=2, seconds=0.01, now_ms=1_002_500)
    value = registry.get_sample_value
    assert value("newswatch_processor_articles_total", {"outcome": "candidate"}) == 2
    assert value("newswatch_processor_articles_total", {"outcome": "no_topics"}) == 3
    assert value("newswatch_processor_candidates_total", {"outcome": "matched"}) == 1
    assert value("newswatch_processor_candidates_total", {"outcome": "duplicate"}) == 1
    assert value("newswatch_processor_matches_total", {"topic": "arms_deal"}) == 1
    assert value("newswatch_processor_batch_size_sum", {"stage": "detection"}) == 5
    assert value("newswatch_processor_batch_size_sum", {"stage": "story"}) == 2
    assert value("newswatch_processor_match_latency_seconds_sum") == pytest.approx(2.5)
    metrics.observe_lag({0: 7})
    assert value("newswatch_processor_consumer_lag", {"partition": "0"}) == 7


def test_only_the_live_watchlist_version_is_reported():
    registry = CollectorRegistry()
    metrics = ProcessorMetrics(registry)
    metrics.set_watchlist("v1")
    metrics.set_watchlist("v2")
    assert registry.get_sample_value("newswatch_processor_watchlist_info", {"version": "v2"}) == 1
    assert registry.get_sample_value("newswatch_processor_watchlist_info", {"version": "v1"}) is None
