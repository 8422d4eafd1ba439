"""The `process:` section: defaults, human durations, strict keys with file:line."""

from datetime import timedelta

import pytest

from newswatch.config import AppConfig
from newswatch.errors import ConfigError
from newswatch.yamlconf import load_text
from processors.settings import ProcessSettings, parse_duration


@pytest.mark.parametrize("text, expected", [
    ("500ms", timedelta(milliseconds=500)), ("30s", timedelta(seconds=30)), ("15m", timedelta(minutes=15)),
    ("48h", timedelta(hours=48)), ("7d", timedelta(days=7)), ("2w", timedelta(weeks=2)),
    ("1.5h", timedelta(minutes=90)),
])
def test_parse_duration(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["7", "7 days", "-1d", "", "d"])
def test_parse_duration_refuses_other_forms(text):
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


def test_defaults_apply_when_the_section_is_absent():
    config = load_text("kafka: {topic_prefix: x.}\n", AppConfig, "newswatch.yaml")
    assert config.process == ProcessSettings()
    assert config.process.dedup_retention == timedelta(days=7)


def test_section_is_read_with_durations():
    config = load_text("process:\n  dedup_retention: 3d\n  reload_interval: 500ms\n",
                       AppConfig, "newswatch.yaml")
    assert config.process.dedup_retention == timedelta(days=3)
    assert config.process.reload_interval == timedelta(milliseconds=500)


def test_partitions_are_shared_by_every_stage():
    config = load_text("kafka:\n  partitions: 4\n", AppConfig, "newswatch.yaml")
    assert config.kafka.partitions == 4
    assert config.kafka.topics.partitions == 4
    assert AppConfig().kafka.topics.partitions == 3


@pytest.mark.parametrize("body, line, needle", [
    ("process:\n  batchsize: 10\n", 2, "batchsize"),
    ("process:\n  partitions: 4\n", 2, "partitions"),  # moved to kafka: (shared by every stage)
    ("kafka:\n  partitions: 0\n", 2, "greater than or equal"),
    ("process:\n  story_window: soon\n", 2, "is not a duration"),
    ("process:\n  reload_interval: 0s\n", 2, "longer than zero"),
])
def test_bad_values_name_the_line(body, line, needle):
    with pytest.raises(ConfigError) as caught:
        load_text(body, AppConfig, "newswatch.yaml")
    problem = caught.value.problems[0]
    assert problem.line == line and needle in str(caught.value)


def test_the_commented_example_in_the_seed_config_is_valid_and_shows_the_defaults():
    from newswatch.config import SEEDS_DIR

    lines = (SEEDS_DIR / "newswatch.yaml").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("# process:"))
    block = [lines[start][2:]]
    for line in lines[start + 1:]:  # the block is the indented comment lines right after its header
        if not line.startswith("#   "):
            break
        block.append(line[2:])
    config = load_text("\n".join(line.split("  #")[0] for line in block) + "\n", AppConfig, "example")
    assert config.process == ProcessSettings()
    assert set(ProcessSettings.model_fields) == {line.split(":")[0].strip() for line in block[1:]}
