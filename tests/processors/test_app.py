"""The faust App is named and configured from newswatch.yaml."""

from newswatch.yamlconf import load_text
from newswatch.config import AppConfig
from processors.app import broker_urls, create_app


def test_broker_urls_for_faust():
    assert broker_urls("a:9092") == "kafka://a:9092"
    assert broker_urls("a:9092, b:9093") == "kafka://a:9092;kafka://b:9093"


def test_app_is_named_under_the_topic_prefix_and_configured_from_settings(monkeypatch):
    monkeypatch.delenv("NEWSWATCH_KAFKA_BOOTSTRAP", raising=False)
    config = load_text('kafka: {topic_prefix: "acme.", bootstrap_servers: "k1:9092,k2:9092"}\n'
                       "process: {session_timeout: 30s}\n", AppConfig, "newswatch.yaml")
    app = create_app(config, partitions=3)
    assert app.conf.id == "acme.processor"
    assert [str(url) for url in app.conf.broker] == ["kafka://k1:9092", "kafka://k2:9092"]
    assert str(app.conf.store) == "memory:"
    assert app.conf.topic_partitions == 3
    assert app.conf.web_enabled is False
    assert app.conf.broker_session_timeout == 30
    assert app.conf.consumer_auto_offset_reset == "earliest"
