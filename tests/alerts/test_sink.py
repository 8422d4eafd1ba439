"""`newswatch sink`: verifies with standardwebhooks, answers 401 on bad signatures, prints and appends alerts."""

import base64
import json
import threading
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from alerts import noise
from alerts.payload import encode_payload
from alerts.settings import GroupingSettings
from alerts.signing import sign_headers, signing_key
from alerts.sink import SinkServer
from newswatch.secrets import Secret
from tests.alerts.factories import ARABIC_TITLE, T0, hit, match

SECRET = "whsec_" + base64.b64encode(b"sink-test-key").decode()
KEY = signing_key(Secret(SECRET))


@pytest.fixture
def sink(tmp_path):
    out = (tmp_path / "alerts.jsonl").open("a", encoding="utf-8")
    printed: list[str] = []
    server = SinkServer(("127.0.0.1", 0), KEY, out, printed.append)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", printed, tmp_path / "alerts.jsonl"
    server.shutdown()
    server.server_close()
    out.close()


def alert_body() -> bytes:
    m = match(lang="ar", title=ARABIC_TITLE, source="RT Arabic", topics=(hit("s400", 0.93, "high", "إس-400"),))
    state, _ = noise.observe(None, "local-sink", m, m.topics, T0, GroupingSettings())
    return encode_payload(state, "msg_sink", T0)[1]


def post(url: str, body: bytes, sent_at: datetime | None = None, key: bytes = KEY) -> httpx.Response:
    headers = sign_headers(key, "msg_sink", sent_at or datetime.now(timezone.utc), body)
    return httpx.post(url, content=body, headers={**headers, "content-type": "application/json"})


def test_valid_alert_is_printed_and_appended(sink):
    url, printed, out = sink
    assert post(url, alert_body()).status_code == 200
    assert ARABIC_TITLE in printed[0] and "S400 (high, 0.93)" in printed[0] and "إس-400" in printed[0]
    assert "https://news.example/a1" in printed[0] and "RT Arabic" in printed[0]
    line = json.loads(out.read_text(encoding="utf-8").splitlines()[0])
    assert line["webhook_id"] == "msg_sink" and line["body"]["article"]["title"] == ARABIC_TITLE


@pytest.mark.parametrize("spoil", ["tampered", "stale", "wrong key", "unsigned"])
def test_bad_signatures_get_401_and_are_not_recorded(sink, spoil):
    url, printed, out = sink
    body = alert_body()
    if spoil == "tampered":
        headers = sign_headers(KEY, "msg_sink", datetime.now(timezone.utc), body)
        tampered = body.replace(b'"sources_count":1', b'"sources_count":9')
        assert tampered != body
        response = httpx.post(url, content=tampered, headers=headers)
    elif spoil == "stale":
        response = post(url, body, sent_at=datetime.now(timezone.utc) - timedelta(minutes=6))
    elif spoil == "wrong key":
        response = post(url, body, key=b"another key")
    else:
        response = httpx.post(url, content=body)
    assert response.status_code == 401
    assert printed == [] and out.read_text() == ""


def test_duplicates_are_acknowledged_but_marked(sink):
    url, printed, out = sink
    assert post(url, alert_body()).status_code == 200
    second = post(url, alert_body())
    assert second.status_code == 200 and second.json()["message"] == "duplicate"
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [line["duplicate"] for line in lines] == [False, True]


def test_sink_command_starts_logs_and_exits_cleanly_on_sigterm(tmp_path):
    import os
    import signal
    import socket
    import subprocess
    import sys
    from pathlib import Path

    from tests.support.waiting import wait_until

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out, log = tmp_path / "alerts.jsonl", tmp_path / "sink.log"
    process = subprocess.Popen([sys.executable, "-m", "newswatch", "sink", "--port", str(port), "--out", str(out)],
                               cwd=Path(__file__).resolve().parents[2], stdout=log.open("w"),
                               stderr=subprocess.STDOUT, env={**os.environ, "NEWSWATCH_SINK_SECRET": SECRET})
    try:
        wait_until(lambda: "sink_started" in log.read_text(), 30, "the sink logs its start")
        assert post(f"http://127.0.0.1:{port}/", alert_body()).status_code == 200
        wait_until(lambda: ARABIC_TITLE in log.read_text(encoding="utf-8"), 10, "the alert is printed")
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
        assert "sink_stopped" in log.read_text() and SECRET not in log.read_text()
        assert json.loads(out.read_text(encoding="utf-8"))["webhook_id"] == "msg_sink"
    finally:
        if process.poll() is None:
            process.kill()
