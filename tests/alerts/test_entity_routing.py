"""Subscriptions' countries/systems filters: routing on a match's entities, strict config, and
`newswatch check` refusing codes the gazetteer does not know (file:line)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from alerts.route import route_one
from alerts.subscriptions import Subscription, entity_problems, load_subscriptions_text
from newswatch.errors import ConfigError
from newswatch.schemas import Entity
from tests.alerts.factories import match

NOW = datetime(2026, 12, 1, tzinfo=timezone.utc)
SEED_WATCHLISTS = Path(__file__).resolve().parents[2] / "seeds" / "watchlists"


def _sub(**fields) -> Subscription:
    return Subscription(name="desk", url="https://hooks.example/x", secret_env="S", **fields)


def _match(countries=(), systems=()):
    entities = tuple(Entity(type="country", id=c, name=c) for c in countries) + \
        tuple(Entity(type="system", id=s, name=s) for s in systems)
    return match().model_copy(update={"entities": entities})


@pytest.mark.parametrize("fields, countries, systems, reason", [
    ({"countries": ("EG",)}, ("EG", "RU"), (), "matched"),
    ({"countries": ("TR",)}, ("EG", "RU"), (), "country_filtered"),
    ({"countries": ("TR", "EG")}, ("EG",), (), "matched"),  # any (the default)
    ({"countries": ("RU", "EG"), "countries_mode": "all"}, ("EG", "RU", "US"), (), "matched"),
    ({"countries": ("RU", "TR"), "countries_mode": "all"}, ("EG", "RU"), (), "country_filtered"),
    ({"systems": ("S-400",)}, (), ("S-300", "S-400"), "matched"),
    ({"systems": ("Patriot",)}, (), ("S-400",), "system_filtered"),
    ({"countries": ("EG",), "systems": ("S-400",)}, ("EG",), (), "system_filtered"),
    ({"countries": ("EG",)}, (), (), "country_filtered"),  # a match without entities
    ({}, (), (), "matched"),  # no entity filter: entities do not matter
])
def test_route_on_entities(fields, countries, systems, reason):
    assert route_one(_match(countries, systems), _sub(**fields), (), NOW).reason == reason


def test_country_codes_are_checked_strictly_with_file_and_line():
    text = ("subscriptions:\n  - name: desk\n    url: https://hooks.example/x\n    secret_env: S\n"
            "    countries: [eg]\n    countries_mode: some\n")
    with pytest.raises(ConfigError) as caught:
        load_subscriptions_text(text, "subs.yaml")
    message = str(caught.value)
    assert "subs.yaml:5" in message and "subs.yaml:6" in message


def test_check_refuses_codes_the_gazetteer_does_not_know(tmp_path):
    path = tmp_path / "subscriptions.yaml"
    path.write_text("subscriptions:\n  - name: desk\n    url: https://hooks.example/x\n    secret_env: S\n"
                    "    countries: [EG, XY, NZ]\n    systems: [S-400, S-4000]\n", encoding="utf-8")
    found = {(p.line, p.key): p.message for p in entity_problems(path, SEED_WATCHLISTS)}
    assert set(found) == {(5, "subscriptions.0.countries.1"), (5, "subscriptions.0.countries.2"),
                          (6, "subscriptions.0.systems.1")}
    assert "not an ISO 3166" in found[(5, "subscriptions.0.countries.1")]  # XY is no ISO code
    assert "not in the gazetteer" in found[(5, "subscriptions.0.countries.2")]  # NZ is, but not listed
    assert entity_problems(path, tmp_path) != []  # no gazetteer at all: every filter is reported
