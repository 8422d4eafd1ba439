"""Dedup decisions: first sight, replay of the same record, second publication; retention."""

import pytest

from processors.dedup import Seen, Verdict, expired, judge


@pytest.mark.parametrize("previous, partition, offset, verdict", [
    (None, 0, 5, Verdict.FIRST),
    (Seen(0, 5, 100), 0, 5, Verdict.REPLAY),
    (Seen(0, 5, 100), 0, 9, Verdict.DUPLICATE),
    (Seen(0, 5, 100), 1, 5, Verdict.DUPLICATE),
])
def test_judge(previous, partition, offset, verdict):
    assert judge(previous, partition, offset) is verdict


def test_expired_entries_are_older_than_the_retention():
    entries = [("old", Seen(0, 1, 1_000)), ("edge", Seen(0, 2, 5_000)), ("new", Seen(0, 3, 9_000))]
    assert [key for key, _ in expired(entries, now_ms=10_000, retention_ms=5_000)] == ["old"]


def test_seen_round_trips_through_json():
    assert Seen.from_json_dict(Seen(3, 42, 7).to_json_dict()) == Seen(3, 42, 7)
