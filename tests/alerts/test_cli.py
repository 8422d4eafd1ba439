"""`newswatch alerts test SUBSCRIPTION` and `newswatch alerts replay` against real local receivers."""

import base64
import json

import pytest
from click.testing import CliRunner
from kafka import KafkaProducer
from standardwebhooks.webhooks import Webhook

from alerts.records import AlertDeadLetter
from newswatch.cli import main
from newswatch.kafka_settings import Topics
from tests.alerts.factories import T0
from tests.alerts.receivers import Receiver, always
from tests.support.kafka import create_topics

SECRET = "whsec_" + base64.b64encode(b"cli-test-signing-key").decode()
ENV = {"NW_CLI_SECRET": SECRET}


def config(tmp_path, url: str, bootstrap: str = "127.0.0.1:1", prefix: str = "newswatch.") -> str:
    (tmp_path / "subscriptions.yaml").write_text(
        f"subscriptions:\n  - name: desk\n    url: {url}\n    secret_env: NW_CLI_SECRET\n", encoding="utf-8")
    (tmp_path / "newswatch.yaml").write_text(
        f"kafka: {{bootstrap_servers: \"{bootstrap}\", topic_prefix: \"{prefix}\"}}\n"
        "subscriptions: subscriptions.yaml\nalerts: {allow_private_networks: true}\n", encoding="utf-8")
    return str(tmp_path / "newswatch.yaml")


def test_alerts_test_sends_one_signed_alert(tmp_path):
    receiver = Receiver()
    try:
        result = CliRunner().invoke(main, ["alerts", "test", "desk", "--config", config(tmp_path, receiver.url)],
                                    env=ENV)
        assert result.exit_code == 0, result.output
        assert result.output.startswith("ok: desk answered HTTP 200")
        body = Webhook(SECRET).verify(receiver.requests[0].body, receiver.requests[0].headers)
        assert body["reason"] == "test" and body["subscription"] == "desk"
    finally:
        receiver.close()


def test_alerts_test_reports_refusals_and_unknown_names(tmp_path):
    receiver = Receiver(always(403))
    try:
        path = config(tmp_path, receiver.url)
        refused = CliRunner().invoke(main, ["alerts", "test", "desk", "--config", path], env=ENV)
        assert refused.exit_code == 1 and "test alert not accepted: HTTP 403" in refused.output
        unknown = CliRunner().invoke(main, ["alerts", "test", "nobody", "--config", path], env=ENV)
        assert unknown.exit_code == 1 and "no subscription named 'nobody' (known: desk)" in unknown.output
    finally:
        receiver.close()


def test_missing_secret_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(main, ["alerts", "test", "desk", "--config", config(tmp_path, "http://127.0.0.1:9/")],
                                env={"NW_CLI_SECRET": ""})
    assert result.exit_code == 1
    assert "environment variable NW_CLI_SECRET is not set" in result.output


def test_the_private_network_guard_applies_unless_allowed(tmp_path):
    path = config(tmp_path, "http://127.0.0.1:9/")
    (tmp_path / "newswatch.yaml").write_text(
        (tmp_path / "newswatch.yaml").read_text().replace("allow_private_networks: true", "timeout: 2s"))
    result = CliRunner().invoke(main, ["alerts", "test", "desk", "--config", path], env=ENV)
    assert result.exit_code == 1 and "address_refused" in result.output and "loopback" in result.output


@pytest.mark.integration
def test_replay_resends_dead_letters_with_their_webhook_id(kafka_bootstrap, topic_prefix, tmp_path):
    topics = Topics(topic_prefix)
    receiver = Receiver()
    body = json.dumps({"type": "newswatch.alert", "version": 1, "id": "msg_dead1", "story_id": "s1"})
    letters = [AlertDeadLetter(id=f"msg_dead{i}", subscription=sub, story_id=f"s{i}", body=body, reason="http_404",
                               status=404, error="HTTP 404", attempts=1, created_at=T0, dead_at=T0)
               for i, sub in ((1, "desk"), (2, "removed-sub"), (1, "desk"))]
    create_topics(kafka_bootstrap, topics.alerts_dlq)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    for letter in letters:
        producer.send(topics.alerts_dlq, key=letter.id.encode(), value=letter.encode())
    producer.flush()
    producer.close()
    try:
        path = config(tmp_path, receiver.url, kafka_bootstrap, topic_prefix)
        result = CliRunner().invoke(main, ["alerts", "replay", "--config", path, "--subscription", "desk"], env=ENV)
        assert result.exit_code == 0, result.output
        assert "sent msg_dead1 desk" in result.output and "1 of 1 replayed" in result.output
        assert [r.headers["webhook-id"] for r in receiver.requests] == ["msg_dead1"], "a repeated letter is sent once"
        Webhook(SECRET).verify(receiver.requests[0].body, receiver.requests[0].headers)
        everything = CliRunner().invoke(main, ["alerts", "replay", "--config", path, "--dry-run"], env=ENV)
        assert "would send msg_dead1" in everything.output
        assert "skip msg_dead2 removed-sub" in everything.output and everything.exit_code == 1
    finally:
        receiver.close()


def test_silence_add_and_list_keep_the_file_valid(tmp_path):
    path = config(tmp_path, "http://127.0.0.1:9/")
    subs = tmp_path / "subscriptions.yaml"
    runner = CliRunner()
    added = runner.invoke(main, ["alerts", "silence", "add", "--config", path, "--topic", "s400", "--source", "TASS",
                                 "--for", "2h", "--subscription", "desk", "--comment", "already followed"])
    assert added.exit_code == 0, added.output
    assert added.output.startswith("silenced topic=s400, source=TASS until ")
    listed = runner.invoke(main, ["alerts", "silence", "list", "--config", path])
    assert "active " in listed.output and "topic=s400, source=TASS  [desk]  # already followed" in listed.output
    from alerts.subscriptions import load_subscriptions
    silences = load_subscriptions(subs).silences
    assert [(s.matchers.topic, s.subscriptions) for s in silences] == [("s400", ("desk",))]
    before = subs.read_text()
    for bad in (["--for", "2h"], ["--topic", "x", "--for", "soon"], ["--topic", "x", "--for", "1h", "--subscription",
                                                                     "nobody"], ["--topic", "x"]):
        result = runner.invoke(main, ["alerts", "silence", "add", "--config", path, *bad])
        assert result.exit_code != 0, bad
    assert subs.read_text() == before, "a rejected silence never touches the file"
    expired = runner.invoke(main, ["alerts", "silence", "list", "--config", path, "--all"])
    assert expired.output.count("until") == 1


def test_silence_remove_by_number_and_expired_keeps_comments_and_refuses_unknown_numbers(tmp_path):
    path = config(tmp_path, "http://127.0.0.1:9/")
    subs = tmp_path / "subscriptions.yaml"
    subs.write_text("# the desk's subscriptions\n" + subs.read_text(), encoding="utf-8")
    runner = CliRunner()
    for extra in (["--topic", "arms_deal", "--for", "2h"], ["--source", "TASS", "--until", "2020-01-01"],
                  ["--term", "S-400", "--for", "1d", "--comment", "known story"]):
        added = runner.invoke(main, ["alerts", "silence", "add", "--config", path, *extra])
        assert added.exit_code == 0, added.output
    listed = runner.invoke(main, ["alerts", "silence", "list", "--config", path, "--all"]).output.splitlines()
    assert [line.split()[0] for line in listed] == ["#1", "#2", "#3"] and "source=TASS" in listed[1]

    # An unknown number changes nothing and says how many there are.
    before = subs.read_text()
    refused = runner.invoke(main, ["alerts", "silence", "remove", "--config", path, "1", "7"])
    assert refused.exit_code == 2 and "no silence #7" in refused.output and "has 3" in refused.output
    assert subs.read_text() == before
    assert runner.invoke(main, ["alerts", "silence", "remove", "--config", path]).exit_code == 2

    removed = runner.invoke(main, ["alerts", "silence", "remove", "--config", path, "3"])
    assert removed.exit_code == 0 and removed.output.startswith("removed active ") and "term=S-400" in removed.output
    pruned = runner.invoke(main, ["alerts", "silence", "remove", "--config", path, "--expired"])
    assert pruned.exit_code == 0 and pruned.output.startswith("removed expired ") and "source=TASS" in pruned.output
    from alerts.subscriptions import load_subscriptions
    assert [s.matchers.topic for s in load_subscriptions(subs).silences] == ["arms_deal"]
    assert subs.read_text().startswith("# the desk's subscriptions\n")
    again = runner.invoke(main, ["alerts", "silence", "remove", "--config", path, "--expired"])
    assert again.exit_code == 0 and again.output.strip() == "no expired silences to remove"
