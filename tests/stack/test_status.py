"""The status line from Prometheus samples, and alerts rendered from the sink's JSON lines (pure)."""

from __future__ import annotations

import io
import json

from newswatch.stack.plan import plan_children, ports_in_use
from newswatch.stack.runner import AlertTail, Console, new_sink_secret
from newswatch.stack.settings import DemoFeedsSettings, MetricsPorts, UpSettings
from newswatch.stack.status import alert_payload, format_alert, matched_terms, parse_metrics, summarize

INGEST = """# TYPE newswatch_ingest_polls_total counter
newswatch_ingest_polls_total{outcome="new"} 3
newswatch_ingest_polls_total{outcome="not_modified"} 9
newswatch_ingest_articles_published_total 19
newswatch_ingest_feed_errors_total{reason="timeout"} 2
"""
PROCESS = """newswatch_processor_articles_total{outcome="matched"} 7
newswatch_processor_articles_total{outcome="no_topics"} 10
newswatch_processor_articles_total{outcome="duplicate"} 1
newswatch_processor_articles_total{outcome="dead_letter"} 1
newswatch_processor_matches_total{topic="arms_deal"} 4
newswatch_processor_matches_total{topic="ministerial_visit"} 3
"""
ALERTS = """newswatch_alerts_deliveries_total{subscription="local-sink",outcome="delivered",reason="ok"} 7
newswatch_alerts_deliveries_total{subscription="local-sink",outcome="retry",reason="http_500"} 2
newswatch_alerts_deliveries_total{subscription="x",outcome="dead",reason="http_400"} 1
"""

SEED_ALERT = {
    "type": "newswatch.alert", "version": 1, "id": "msg_1", "subscription": "local-sink", "story_id": "s1",
    "sources_count": 2,
    "article": {"title": "لافروف وشويغو يستقبلان نظيريهما المصريين", "url": "https://a.example/x",
                "source": "RT Arabic (demo)", "lang": "ar"},
    "topics": [
        {"topic": "arms_deal", "title": "Arms deal", "score": 0.9,
         "evidence": [{"term": "صفقة عسكرية", "field": "text", "start": 1, "end": 2, "snippet": "…"}]},
        {"topic": "air_defense_system", "title": "Air defence", "score": 0.95,
         "evidence": [{"term": "اس-400", "field": "text", "start": 3, "end": 4, "snippet": "…"},
                      {"term": "صفقة عسكرية", "field": "text", "start": 1, "end": 2, "snippet": "…"}]},
    ],
}


def test_summary_from_each_stage():
    snapshot = summarize({"ingest": parse_metrics(INGEST), "process": parse_metrics(PROCESS),
                          "alerts": parse_metrics(ALERTS)}, alerts_received=6, restarts=1)
    assert snapshot.polls == 12 and snapshot.articles == 19 and snapshot.processed == 19
    assert snapshot.matches_by_topic == {"arms_deal": 4, "ministerial_visit": 3}
    assert snapshot.deliveries == 7
    assert snapshot.errors == 2 + 1 + 1  # feed errors, dead letters, dead deliveries (retries are not errors)
    line = snapshot.line()
    assert "polls 12" in line and "arms_deal=4 ministerial_visit=3" in line and "restarts 1" in line


def test_unreachable_stage_shows_question_marks_not_zero():
    snapshot = summarize({"ingest": None, "process": parse_metrics(PROCESS), "alerts": None}, 0, 0)
    assert snapshot.polls is None and snapshot.deliveries is None
    assert "polls ?" in snapshot.line() and "alerts delivered ?" in snapshot.line()


def test_garbage_metrics_text_is_no_samples():
    assert parse_metrics("this is { not prometheus") == []


def test_alert_rendering_has_title_topics_terms_source_and_link():
    lines = "\n".join(format_alert(SEED_ALERT))
    assert "لافروف وشويغو" in lines and "Arms deal (0.90)" in lines and "Air defence (0.95)" in lines
    assert "صفقة عسكرية · اس-400" in lines  # each term once, in order
    assert "RT Arabic (demo) (+1 more)  [ar]" in lines and "https://a.example/x" in lines
    assert matched_terms(SEED_ALERT) == ["صفقة عسكرية", "اس-400"]


def test_alert_payload_accepts_bare_or_wrapped_lines():
    assert alert_payload(json.dumps(SEED_ALERT))["story_id"] == "s1"
    assert alert_payload(json.dumps({"received_at": "t", "payload": SEED_ALERT}))["story_id"] == "s1"
    assert alert_payload(json.dumps({"duplicate": True, "body": SEED_ALERT})) is None
    assert alert_payload("{not json") is None and alert_payload('"x"') is None
    digest = {"type": "newswatch.digest", "count": 2, "subscription": "s", "alerts": [{"title": "a"}, {"title": "b"}]}
    assert format_alert(alert_payload(json.dumps(digest)))[0].startswith("DIGEST 2 alerts")


def test_alert_tail_returns_complete_lines_once(tmp_path):
    path = tmp_path / "alerts.jsonl"
    tail = AlertTail(path)
    assert tail.read_new() == []                      # no file yet
    path.write_text('{"a":1}\n{"b":')                 # the second line is still being written
    assert tail.read_new() == ['{"a":1}']
    with path.open("a") as handle:
        handle.write('2}\n')
    assert tail.read_new() == ['{"b":2}'] and tail.count == 2
    assert tail.read_new() == []


def test_console_plain_mode_prints_status_lines_only_when_changed_and_not_too_often():
    out = io.StringIO()
    console = Console(stream=out, interactive=False)
    console.status("a", now=100.0)
    console.status("a", now=200.0)    # unchanged: not repeated
    console.status("b", now=201.0)    # changed but too soon after the last line
    console.status("b", now=215.0)
    console.say("ALERT x")
    assert out.getvalue().splitlines() == ["status: a", "status: b", "ALERT x"]
    assert "\x1b" not in out.getvalue()  # no terminal escapes without a terminal


def test_console_interactive_mode_redraws_one_status_line():
    out = io.StringIO()
    console = Console(stream=out, interactive=True)
    console.status("one", now=0.0)
    console.say("ALERT x")
    console.status("two", now=0.1)
    assert out.getvalue() == "\x1b[2mone\x1b[0m\r\x1b[KALERT x\n\x1b[2mtwo\x1b[0m"


def test_generated_sink_secret_is_a_fresh_standard_webhooks_secret():
    from standardwebhooks.webhooks import Webhook

    first, second = new_sink_secret(), new_sink_secret()
    assert first.startswith("whsec_") and first != second
    Webhook(first)  # the library accepts it


def test_plan_runs_sink_first_and_every_stage_with_config_and_metrics_port(tmp_path):
    settings = UpSettings(metrics_ports=MetricsPorts(ingest=1, process=2, alerts=0))
    specs = plan_children(tmp_path / "n.yaml", settings, tmp_path, python="py")
    assert [s.name for s in specs] == ["sink", "ingest", "process", "alerts", "console"]
    assert specs[4].argv == ("py", "-m", "newswatch", "console", "--config", str(tmp_path / "n.yaml"))
    assert [s.name for s in plan_children(tmp_path / "n.yaml", UpSettings(console=False), tmp_path)][-1] == "alerts"
    assert specs[1].argv == ("py", "-m", "newswatch", "ingest", "--config", str(tmp_path / "n.yaml"),
                             "--metrics-port", "1")
    assert specs[0].argv[3:] == ("sink", "--host", "127.0.0.1", "--port", "8787", "--out",
                                 str(tmp_path / "alerts.jsonl"), "--secret-env", "NEWSWATCH_SINK_SECRET")
    assert all(s.log_path == tmp_path / "logs" / f"{s.name}.log" for s in specs)


def test_ports_in_use_lists_what_listens_and_skips_disabled_ones():
    settings = UpSettings(demo_feeds=DemoFeedsSettings(port=8000), metrics_ports=MetricsPorts(alerts=0))
    assert ports_in_use(settings) == {"ingest metrics": 9101, "process metrics": 9102, "sink": 8787,
                                      "demo feed server": 8000}
    assert "sink" not in ports_in_use(UpSettings(sink=None))


def test_run_config_makes_paths_absolute_and_opens_the_guard_only_for_demo_feeds(tmp_path):
    from newswatch.config import load_config
    from newswatch.stack.plan import run_config

    (tmp_path / "newswatch.yaml").write_text("feeds: feeds.yaml\ningest: {per_host: 3}\n"
                                             "up: {demo_feeds: {dir: demo}}\n")
    config = load_config(tmp_path / "newswatch.yaml")
    derived = run_config({"feeds": "feeds.yaml", "ingest": {"per_host": 3}, "up": {"demo_feeds": {"dir": "demo"}}},
                         config)
    assert derived["feeds"] == str(tmp_path / "feeds.yaml") and "watchlists" not in derived
    assert derived["ingest"] == {"per_host": 3, "state_dir": str(tmp_path / ".newswatch" / "ingest"),
                                 "allow_networks": ["127.0.0.1/32"]}
    real = load_config(tmp_path / "newswatch.yaml").model_copy(update={"up": UpSettings()})
    assert "allow_networks" not in run_config({"ingest": {}}, real)["ingest"]
