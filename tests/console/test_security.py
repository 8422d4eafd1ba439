"""The console's safety: a token beyond loopback, CSRF on changes, headers, and no secret anywhere.

The app runs in-process (Starlette's test client) on a store filled with real records; a replay
goes to a real HTTP receiver, signed with the subscription's secret, so the secret is really in
use while every page, API answer and DEBUG log line is scanned for it.
"""

from __future__ import annotations

import base64
import io
import json
import logging
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from standardwebhooks.webhooks import Webhook

from alerts.records import AlertDeadLetter, PendingDelivery
from console.app import create_app
from console.cli import ConsoleError, build_context
from console.store import StoryFilter
from ingest.feeds_config import FeedConfig
from ingest.health import health_of
from ingest.seen import FeedState
from newswatch.logs import setup_logging
from tests.alerts.receivers import Receiver, always
from tests.console import factories

SIGNING = "whsec_" + base64.b64encode(b"CONSOLE-SIGNING-never-shown").decode()
PATH_TOKEN, QUERY_TOKEN, FEED_KEY = "PATHTOKEN5531", "QUERYTOKEN8142", "FEEDKEY3390"
CONSOLE_TOKEN = "console-token-never-shown-4471"
SECRETS = [SIGNING, SIGNING.removeprefix("whsec_"), PATH_TOKEN, QUERY_TOKEN, FEED_KEY, CONSOLE_TOKEN]


def write_config(root: Path, watchlists: Path = factories.WATCHLISTS) -> Path:
    (root / "subscriptions.yaml").write_text(
        "subscriptions:\n  - name: desk\n    url_env: NW_CONSOLE_URL\n    secret_env: NW_CONSOLE_SECRET\n"
        "silences: []\n", encoding="utf-8")
    (root / "feeds.yaml").write_text(f"feeds:\n  - url: https://feeds.example/rss?key={FEED_KEY}\n    name: Keyed\n",
                                     encoding="utf-8")
    (root / "newswatch.yaml").write_text(
        f"feeds: feeds.yaml\nwatchlists: {watchlists}\nsubscriptions: subscriptions.yaml\n"
        "alerts:\n  allow_private_networks: true\n  timeout: 5s\n"
        "console:\n  store: console.db\n  retention: 30d\n", encoding="utf-8")
    return root / "newswatch.yaml"


def fill(store, kinds) -> AlertDeadLetter:
    """A story, a delivered alert, a dead letter and the keyed feed's health, as Kafka records."""
    item = factories.article("sec-1", *factories.RUSSIAN_S400, "ru", source="TASS")
    body = json.dumps({"type": "newswatch.alert", "version": 1, "id": "msg_sec_1", "subscription": "desk",
                       "story_id": "st-sec-1", "reason": "first", "sequence": 1})
    at = factories.BASE
    pending = PendingDelivery(id="msg_sec_1", subscription="desk", story_id="st-sec-1", body=body, created_at=at,
                              next_attempt_at=at, attempts=2, last_status=503, last_error="http_503")
    letter = AlertDeadLetter.from_pending(pending, "retries_exhausted", at + timedelta(minutes=1))
    feed = FeedConfig(url=f"https://feeds.example/rss?key={FEED_KEY}", name="Keyed")
    state = FeedState(url=feed.url, last_attempt_at=at, consecutive_failures=1,
                      last_error="http_500: HTTP 500", articles_total=4)
    store.apply([factories.consumed(kinds.matches, 0, factories.match_bytes(item, "st-sec-1")),
                 factories.consumed(kinds.alerts_state, 0, pending.encode(), key=b"pending/msg_sec_1"),
                 factories.consumed(kinds.alerts_dlq, 0, letter.encode(), key=b"msg_sec_1"),
                 factories.consumed(kinds.feed_health, 0, health_of(feed, state, at).encode(), key=b"fd")], 0)
    return letter


def test_beyond_loopback_it_will_not_start_without_a_token(tmp_path):
    config = write_config(tmp_path)
    with pytest.raises(ConsoleError, match="NEWSWATCH_CONSOLE_TOKEN"):
        build_context(config, environ={}, with_feeder=False, host="0.0.0.0")
    _, ctx = build_context(config, environ={}, with_feeder=False, host="127.0.0.1")
    assert ctx.token is None  # loopback: this machine only, no token needed


def test_no_token_gives_401_and_the_token_or_its_cookie_opens(tmp_path):
    _, ctx = build_context(write_config(tmp_path), environ={"NEWSWATCH_CONSOLE_TOKEN": CONSOLE_TOKEN},
                           with_feeder=False, host="0.0.0.0")
    client = TestClient(create_app(ctx))
    for path in ("/stories", "/api/stories", "/api/feeds", "/stories/st-x", "/feeds", "/test", "/alerts",
                 "/openapi.json", "/docs", "/api/stories/stream"):
        assert client.get(path).status_code == 401, path
        assert client.get(path, headers={"authorization": "Bearer wrong-token-of-some-length"}).status_code == 401
    assert client.post("/api/test", json={"text": "x"}).status_code == 401
    page = client.get("/stories", headers={"accept": "text/html"})
    assert page.status_code == 401 and 'name="token"' in page.text  # the login page
    bearer = {"authorization": f"Bearer {CONSOLE_TOKEN}"}
    assert client.get("/api/stories", headers=bearer).status_code == 200
    assert client.post("/api/test", json={"text": "Patriot batteries"}, headers=bearer).status_code == 200
    csrf = client.cookies.get("nw_csrf")
    assert client.post("/login", data={"token": "wrong", "csrf_token": csrf}).status_code == 401
    login = client.post("/login", data={"token": CONSOLE_TOKEN, "csrf_token": csrf}, follow_redirects=False)
    assert login.status_code == 303
    assert CONSOLE_TOKEN not in login.headers["set-cookie"]
    assert client.get("/stories").status_code == 200  # the session cookie now


def test_cross_site_posts_are_refused(tmp_path):
    _, ctx = build_context(write_config(tmp_path), environ={}, with_feeder=False)
    client = TestClient(create_app(ctx))
    client.get("/test")
    csrf = client.cookies.get("nw_csrf")
    form = {"text": "Patriot batteries for Poland", "csrf_token": csrf}
    evil = {"origin": "https://evil.example", "sec-fetch-site": "cross-site"}
    assert client.post("/test", data=form, headers=evil).status_code == 403
    assert client.post("/test", data=form, headers={"origin": "https://evil.example"}).status_code == 403
    assert client.post("/test", data=form, headers={"sec-fetch-site": "same-site"}).status_code == 403
    assert client.post("/test", data={**form, "csrf_token": "forged"}).status_code == 403
    assert client.post("/test", data={"text": "x"}).status_code == 403  # no token at all
    assert client.post("/alerts/silences", data={"topic": "arms_deal"}).status_code == 403
    assert client.post("/api/test", json={"text": "x"}).status_code == 403  # JSON needs the header
    assert client.post("/api/test", json={"text": "x"}, headers={"x-csrf-token": csrf}).status_code == 200
    same = client.post("/test", data=form, headers={"origin": "http://testserver", "sec-fetch-site": "same-origin"})
    assert same.status_code == 200 and "air_defense_system" in same.text


def test_every_answer_carries_a_strict_content_security_policy(tmp_path):
    _, ctx = build_context(write_config(tmp_path), environ={}, with_feeder=False)
    client = TestClient(create_app(ctx))
    for path in ("/stories", "/api/stories", "/static/console.js", "/nowhere"):
        policy = client.get(path).headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy


def test_no_secret_in_any_page_api_answer_or_debug_log(tmp_path, monkeypatch):
    receiver = Receiver(always(200))
    url = f"{receiver.url}/{PATH_TOKEN}?token={QUERY_TOKEN}"
    env = {"NW_CONSOLE_URL": url, "NW_CONSOLE_SECRET": SIGNING, "NEWSWATCH_CONSOLE_TOKEN": CONSOLE_TOKEN}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    stream = io.StringIO()
    setup_logging("DEBUG", stream=stream)
    try:
        config = write_config(tmp_path)
        _, ctx = build_context(config, environ=env, with_feeder=False, host="0.0.0.0")
        letter = fill(ctx.store, ctx.store.kinds)
        app = create_app(ctx)
        client = TestClient(app, headers={"authorization": f"Bearer {CONSOLE_TOKEN}"})
        answers = []
        replay = client.post("/alerts/replay", data={"webhook_id": letter.id})
        answers.append(replay)
        assert replay.status_code == 200 and "replayed: HTTP 200" in replay.text
        sent = receiver.accepted()
        assert len(sent) == 1 and sent[0].headers["webhook-id"] == letter.id  # the same webhook-id
        Webhook(SIGNING).verify(sent[0].body, sent[0].headers)  # signed with the real secret
        answers.append(client.post("/alerts/silences", data={"topic": "arms_deal", "duration": "1h"}))
        answers.append(client.post("/test", data={"text": "Индия получила комплект S-400"}))
        answers.append(client.post("/test/pack", data={"yaml": "topics: [\n"}))
        for route in app.routes:
            path = getattr(route, "path", "")
            if "GET" not in (getattr(route, "methods", None) or ()) or path.endswith("/stream"):
                continue
            path = path.replace("{story_id}", "st-sec-1")
            answer = client.get(path)
            assert answer.status_code in (200, 307), (path, answer.status_code)
            answers.append(answer)
        assert ctx.store.stories(StoryFilter())  # the live stream sends these same rows
        alerts_page = client.get("/alerts").text
        assert "msg_sec_1" in alerts_page and "retries_exhausted" in alerts_page and "arms_deal" in alerts_page
        feeds_page = client.get("/feeds").text
        assert "https://feeds.example/rss" in feeds_page and "failing" in feeds_page
    finally:
        logging.getLogger().handlers.clear()
        receiver.close()
    logs = stream.getvalue()
    assert "console_replay" in logs and "replayed: HTTP 200" in logs  # the scan read a real DEBUG log
    for answer in answers:
        text = answer.text + json.dumps(dict(answer.headers))
        for secret in SECRETS:
            assert secret not in text, f"{secret} shown by {answer.request.url.path}"
    for secret in SECRETS:
        assert secret not in logs, f"{secret} leaked into the DEBUG log"


def test_the_command_refuses_a_public_address_without_a_token(tmp_path):
    import os
    import subprocess
    import sys

    config = write_config(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "NEWSWATCH_CONSOLE_TOKEN"}
    result = subprocess.run([sys.executable, "-m", "newswatch", "console", "--config", str(config), "--host",
                             "0.0.0.0", "--port", "1"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "newswatch: error: the console is bound to 0.0.0.0" in result.stderr
    assert "NEWSWATCH_CONSOLE_TOKEN" in result.stderr
