"""URLs in logs, errors and concurrency keys stay valid URLs for IPv6 hosts (brackets), redacted
as before; the guard's refusal names both the config key and the command-line flag. Pure (the
refused fetch is refused before any connection)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner

from alerts.deliver import host_of
from newswatch.cli import main
from newswatch.logs import safe_url


@pytest.mark.parametrize("url, shown", [
    ("http://[::1]:18999/ok.xml?token=s3cret#x", "http://[::1]:18999/ok.xml"),
    ("https://user:pw@[2001:db8::7]/feed", "https://[2001:db8::7]/feed"),
    ("http://[fe80::1%25eth0]:80/a", "http://[fe80::1%25eth0]:80/a"),
    ("http://127.0.0.1:8080/rss?key=1", "http://127.0.0.1:8080/rss"),
    ("https://example.org/a/b", "https://example.org/a/b"),
])
def test_safe_url_keeps_ipv6_hosts_in_brackets_and_drops_secrets(url, shown):
    assert safe_url(url) == shown
    assert urlsplit(shown).hostname == urlsplit(url).hostname  # it reads back as the same host


def test_safe_url_of_a_bad_port_does_not_raise():
    assert safe_url("http://[::1]:99999999/") == "<unparseable url>"


@pytest.mark.parametrize("url, key", [("http://[::1]:8787/", "http://[::1]:8787"),
                                      ("https://[2001:db8::1]/hook", "https://[2001:db8::1]:443"),
                                      ("http://sink:8787/", "http://sink:8787")])
def test_the_alerts_host_key_is_a_valid_origin(url, key):
    assert host_of(url) == key
    assert urlsplit(key).hostname == urlsplit(url).hostname


def test_a_refused_ipv6_feed_is_shown_as_a_url_and_the_message_names_the_flag(tmp_path):
    (tmp_path / "newswatch.yaml").write_text("{}\n")
    result = CliRunner().invoke(main, ["fetch", "http://[::1]:18999/ok.xml?token=s3cret",
                                       "--config", str(tmp_path / "newswatch.yaml")])
    assert result.exit_code == 1, result.output
    assert "http://[::1]:18999/ok.xml" in result.output and "s3cret" not in result.output
    assert "http://::1:" not in result.output
    assert "refused to connect to [::1] (::1): loopback address" in result.output
    assert "--allow-private-networks" in result.output and "allow_networks" in result.output
