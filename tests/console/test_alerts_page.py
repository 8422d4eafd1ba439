"""The Alerts page's silences: listed from the subscriptions file, added and expired through the
same file edits as `newswatch alerts silence add|remove` (so a running dispatcher picks them up)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from alerts.subscriptions import load_subscriptions
from console.app import create_app
from console.cli import build_context
from tests.console.test_security import write_config


def test_silences_are_listed_added_and_expired(tmp_path):
    config = write_config(tmp_path)
    subs = tmp_path / "subscriptions.yaml"
    subs.write_text(subs.read_text(encoding="utf-8").replace(
        "silences: []\n", "silences:\n  # quiet while the story is known\n  - matchers: {topic: arms_deal}\n"
                          "    expires_at: 2099-01-01T00:00:00Z\n    comment: already followed\n"), encoding="utf-8")
    _, ctx = build_context(config, environ={}, with_feeder=False)
    client = TestClient(create_app(ctx))
    listed = client.get("/api/alerts").json()["silences"]
    assert [(s["number"], s["matchers"], s["comment"]) for s in listed] == [(1, {"topic": "arms_deal"}, "already followed")]
    csrf = client.cookies.get("nw_csrf")  # set by the first answer
    added = client.post("/alerts/silences", data={"source": "TASS", "term": "С-400", "duration": "3h",
                                                  "comment": "тест", "csrf_token": csrf})
    assert added.status_code == 200 and "silence added until" in added.text
    silences = load_subscriptions(subs).silences
    assert [s.matchers.source for s in silences] == [None, "TASS"] and silences[1].matchers.term == "С-400"
    assert "# quiet while the story is known" in subs.read_text(encoding="utf-8")  # the user's comment stays
    refused = client.post("/alerts/silences", data={"duration": "3h", "csrf_token": csrf})
    assert "not added: a silence needs at least one of" in refused.text
    expired = client.post("/alerts/silences/expire", data={"number": "1", "csrf_token": csrf})
    assert "silence #1 removed" in expired.text
    assert [s.matchers.source for s in load_subscriptions(subs).silences] == ["TASS"]
    assert "not removed" in client.post("/alerts/silences/expire", data={"number": "7", "csrf_token": csrf}).text
