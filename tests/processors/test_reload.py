"""Watchlist reloads: a change swaps the rules, a broken file keeps the old ones and says why."""

import logging
from dataclasses import dataclass
from pathlib import Path

import pytest

from newswatch.errors import ConfigError
from processors.reload import WatchlistReloader, fingerprint


@dataclass(frozen=True)
class Rules:
    version: str
    topics: tuple = ()


def load_rules(folder: Path) -> Rules:
    """A stand-in loader: the rules are the text of rules.yaml; 'broken' is a config error."""
    text = (folder / "rules.yaml").read_text()
    if "broken" in text:
        raise ConfigError.single(str(folder / "rules.yaml"), "topics: expected a list", line=3, key="topics")
    return Rules(version=text.strip())


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "rules.yaml").write_text("v1")
    return tmp_path


def test_fingerprint_follows_content_not_timestamps(folder):
    before = fingerprint(folder)
    (folder / "rules.yaml").touch()
    assert fingerprint(folder) == before
    (folder / "rules.yaml").write_text("v2")
    assert fingerprint(folder) != before
    (folder / "extra.yaml").write_text("x")
    assert fingerprint(folder) not in (before, "")
    assert fingerprint(folder / "missing") == ""


def test_unchanged_folder_keeps_the_rules(folder):
    reloader = WatchlistReloader(folder, load_rules)
    assert reloader.poll().reason == "unchanged" and reloader.current.version == "v1"


def test_changed_file_is_loaded(folder, caplog):
    reloader = WatchlistReloader(folder, load_rules)
    (folder / "rules.yaml").write_text("v2")
    with caplog.at_level(logging.INFO):
        outcome = reloader.poll()
    assert (outcome.reason, outcome.version, reloader.current.version) == ("reloaded", "v2", "v2")
    assert any(r.getMessage() == "watchlists_reloaded" and r.fields["previous_version"] == "v1"
               for r in caplog.records)


def test_invalid_file_keeps_the_old_rules_and_logs_why(folder, caplog):
    reloader = WatchlistReloader(folder, load_rules)
    (folder / "rules.yaml").write_text("broken")
    with caplog.at_level(logging.ERROR):
        outcome = reloader.poll()
    assert outcome.reason == "invalid" and reloader.current.version == "v1"
    assert "rules.yaml:3" in outcome.error
    failed = [r for r in caplog.records if r.getMessage() == "watchlists_reload_failed"]
    assert failed and failed[0].fields["kept_version"] == "v1" and "expected a list" in failed[0].fields["reason"]
    # The broken content is not retried on every poll, but fixing it is picked up.
    assert reloader.poll().reason == "unchanged"
    (folder / "rules.yaml").write_text("v3")
    assert reloader.poll().reason == "reloaded" and reloader.current.version == "v3"


def test_requested_reload_reads_the_files_even_without_a_change(folder):
    calls = []

    def counting_loader(path):
        calls.append(path)
        return load_rules(path)

    reloader = WatchlistReloader(folder, counting_loader)
    reloader.request()
    assert reloader.poll().reason == "same_rules" and len(calls) == 2
    assert reloader.poll().reason == "unchanged" and len(calls) == 2
