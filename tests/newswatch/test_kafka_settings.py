import pytest

from newswatch.errors import ConfigError
from newswatch.kafka_settings import BOOTSTRAP_ENV, DEFAULT_BOOTSTRAP, KafkaSettings, Topics
from newswatch.yamlconf import load_text


def test_environment_overrides_config_which_overrides_default():
    configured = KafkaSettings(bootstrap_servers="kafka:9092")
    assert configured.bootstrap({BOOTSTRAP_ENV: "10.0.0.5:9094"}) == "10.0.0.5:9094"
    assert configured.bootstrap({}) == "kafka:9092"
    assert KafkaSettings().bootstrap({}) == DEFAULT_BOOTSTRAP


def test_is_external_only_when_an_address_was_given():
    assert not KafkaSettings().is_external({})
    assert KafkaSettings().is_external({BOOTSTRAP_ENV: "h:1"})
    assert KafkaSettings(bootstrap_servers="h:1").is_external({})


def test_topic_names_take_the_prefix():
    topics = Topics("acme.nw.")
    assert (topics.articles, topics.matches, topics.articles_dlq, topics.alerts_dlq) == (
        "acme.nw.articles", "acme.nw.matches", "acme.nw.articles.dlq", "acme.nw.alerts.dlq")
    assert KafkaSettings().topics.articles == "newswatch.articles"


@pytest.mark.parametrize("text, key", [
    ("topic_prefix: 'bad prefix/'\n", "topic_prefix"),
    ("bootstrap_servers: 'localhost'\n", "bootstrap_servers"),
    ("bootstrap: 'localhost:9092'\n", "bootstrap"),
])
def test_bad_kafka_settings_are_reported_by_key_and_line(text, key):
    with pytest.raises(ConfigError) as info:
        load_text(text, KafkaSettings, "kafka.yaml")
    problem = info.value.problems[0]
    assert (problem.file, problem.line, problem.key) == ("kafka.yaml", 1, key)
