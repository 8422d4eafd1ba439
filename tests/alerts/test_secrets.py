"""Every delivery path with DEBUG logging: no secret, URL token or query string in logs, DLQ, state or metrics."""

import asyncio
import base64
import io
import json
import logging

import pytest
from prometheus_client import generate_latest

from alerts.settings import AlertsSettings, GroupingSettings
from alerts.subscriptions import Endpoint, Subscription, SubscriptionsFile
from newswatch.kafka_settings import Topics
from newswatch.logs import setup_logging
from newswatch.netguard import address_refusal
from newswatch.secrets import Secret
from tests.alerts.factories import match
from tests.alerts.receivers import Receiver, always, fail_first, produce, running_dispatcher
from tests.support.kafka import read_records
from tests.support.waiting import async_wait_until

pytestmark = pytest.mark.integration

SIGNING = "whsec_" + base64.b64encode(b"SIGNING-KEY-never-logged").decode()
HEADER_VALUE = "HEADER-VALUE-never-logged"
PATH_TOKEN, QUERY_TOKEN, SLACK_TOKEN = "PATHTOKEN7788", "QUERYTOKEN4455", "SLACKTOKEN9911"
SECRETS = [SIGNING, SIGNING.removeprefix("whsec_"), HEADER_VALUE, PATH_TOKEN, QUERY_TOKEN, SLACK_TOKEN]
SETTINGS = AlertsSettings(allow_private_networks=True, retry_schedule=(0.2, 0.2), retry_jitter=0.0, timeout=0.5,
                          grouping=GroupingSettings(wait=0, interval=60))


def closed_port_url() -> str:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook/{PATH_TOKEN}?token={QUERY_TOKEN}"


async def test_no_secret_reaches_logs_dlq_state_or_metrics(kafka_bootstrap, topic_prefix):
    topics = Topics(topic_prefix)
    receivers = {"signed": Receiver(fail_first(1)), "slack": Receiver(always(404)), "gone": Receiver(always(410)),
                 "hanging": Receiver(lambda attempt: None)}
    urls = {name: f"{r.url}/{PATH_TOKEN}?token={QUERY_TOKEN}" for name, r in receivers.items()}
    urls["slack"] = f"{receivers['slack'].url}/services/T0/B0/{SLACK_TOKEN}"
    urls["refused"] = closed_port_url()
    subs, endpoints = [], {}
    for name, url in urls.items():
        fmt = "slack" if name == "slack" else "json"
        subs.append(Subscription(name=name, url_env="NW_URL", format=fmt, secret_env="NW_SECRET",
                                 headers_env={"X-Api-Key": "NW_HEADER"}))
        endpoints[name] = Endpoint(url=Secret(url, "NW_URL"), secret=Secret(SIGNING, "NW_SECRET"),
                                   headers={"X-Api-Key": Secret(HEADER_VALUE, "NW_HEADER")})
    stream = io.StringIO()
    setup_logging("DEBUG", stream=stream)
    try:
        async with running_dispatcher(kafka_bootstrap, topics, SETTINGS, SubscriptionsFile(subscriptions=tuple(subs)),
                                      endpoints) as run:
            await asyncio.to_thread(produce, kafka_bootstrap, topics.matches, [match()])
            # signed: retried then delivered; slack: 404 -> DLQ; gone: 410 -> disabled + DLQ;
            # hanging: timeouts exhausted -> DLQ; refused: connection errors exhausted -> DLQ
            letters = await asyncio.to_thread(read_records, kafka_bootstrap, topics.alerts_dlq, min_count=4,
                                              timeout=60)
            await async_wait_until(lambda: receivers["signed"].accepted(), 30, "the signed one is delivered")
            metrics = generate_latest(run.registry).decode()
        state = await asyncio.to_thread(read_records, kafka_bootstrap, topics.name("alerts.state"), min_count=1)
    finally:
        logging.getLogger().handlers.clear()
        for receiver in receivers.values():
            receiver.close()
    logs = stream.getvalue()
    reasons = sorted(json.loads(r.value)["reason"] for r in letters)
    assert reasons == ["http_404", "http_410", "retries_exhausted", "retries_exhausted"]
    assert "alert_delivered" in logs and "alert_retry_scheduled" in logs and "subscription_disabled" in logs
    assert "timeout" in logs and "connect_error" in logs
    assert receivers["signed"].accepted()[0].headers["x-api-key"] == HEADER_VALUE  # the value was really used
    dlq_text = b"\n".join(r.value for r in letters).decode()
    state_text = b"\n".join(r.value or b"" for r in state).decode()
    for secret in SECRETS:
        assert secret not in logs, f"{secret} leaked into logs"
        assert secret not in dlq_text, f"{secret} leaked into the DLQ"
        assert secret not in state_text, f"{secret} leaked into the state topic"
        assert secret not in metrics, f"{secret} leaked into metrics"
    assert "?token" not in logs and "127.0.0.1:" not in dlq_text
    assert address_refusal("127.0.0.1")  # these deliveries only worked because the test allowed private networks
