"""Delivery attempts against httpx.MockTransport with a fake clock: schedule, headers, verdicts, queues."""

import asyncio
import json
from datetime import datetime, timezone

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from alerts.deliver import DeliveryPool, after_attempt, attempt, host_of
from alerts.records import PendingDelivery
from alerts.settings import AlertsSettings
from alerts.subscriptions import Endpoint, Subscription
from newswatch.secrets import Secret
from tests.alerts.factories import T0, FakeClock
from tests.support.waiting import async_wait_until

SECRET = "whsec_" + "c2lnbmluZy1rZXktZm9yLXRlc3Rz"  # base64 of "signing-key-for-tests"
URL = "https://hooks.example/services/T0/B0/tok3n-in-path?token=q5ecret"
SETTINGS = AlertsSettings()
BODY = json.dumps({"type": "newswatch.alert", "version": 1, "title": "قمة 2+2 في نيودلهي"}, ensure_ascii=False)


def subscription(**fields) -> Subscription:
    return Subscription(**{"name": "desk", "url": "https://hooks.example/x", "secret_env": "S", **fields})


def endpoint(secret: str | None = SECRET, headers: dict | None = None) -> Endpoint:
    return Endpoint(url=Secret(URL), secret=Secret(secret, "S") if secret else None,
                    headers={k: Secret(v) for k, v in (headers or {}).items()})


def pending(msg_id: str = "msg_fixed") -> PendingDelivery:
    return PendingDelivery(id=msg_id, subscription="desk", body=BODY, created_at=T0, next_attempt_at=T0)


def client_answering(answers: list, seen: list) -> httpx.AsyncClient:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = answers[min(len(seen), len(answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer
    return httpx.AsyncClient(transport=httpx.MockTransport(handle))


async def run_schedule(client, clock: FakeClock, settings=SETTINGS, first: PendingDelivery | None = None):
    """Drive one delivery through its attempts the way the dispatcher does, on the fake clock."""
    current, steps = first or pending(), []
    while True:
        clock.now = current.next_attempt_at
        result = await attempt(client, current, subscription(), endpoint(), clock(), 15)
        step = after_attempt(current, result, clock(), settings)
        steps.append((clock(), step))
        if step.verdict != "retry":
            return steps
        current = step.pending


async def test_schedule_on_a_fake_clock_same_id_fresh_valid_signature_one_delivery():
    seen: list[httpx.Request] = []
    clock = FakeClock()
    async with client_answering([httpx.Response(503)] * 7 + [httpx.Response(200)], seen) as client:
        steps = await run_schedule(client, clock)
    offsets = [(when - T0).total_seconds() for when, _ in steps]
    assert offsets == [0, 5, 305, 2105, 9305, 27305, 63305, 99305]
    assert [step.verdict for _, step in steps] == ["retry"] * 7 + ["delivered"]
    assert {r.headers["webhook-id"] for r in seen} == {"msg_fixed"}
    for (when, _), request in zip(steps, seen):
        stamp = request.headers["webhook-timestamp"]
        assert stamp == str(int(when.timestamp())), "each attempt is signed with its own time"
        expected = Webhook(SECRET).sign("msg_fixed", datetime.fromtimestamp(int(stamp), timezone.utc),
                                        request.content.decode())
        assert request.headers["webhook-signature"] == expected
        assert request.content == BODY.encode()
    assert sum(1 for r in seen) == 8 and steps[-1][1].pending.attempts == 8


async def test_exhausted_retries_are_dead_with_status_error_and_attempts():
    seen: list = []
    async with client_answering([httpx.Response(500)], seen) as client:
        steps = await run_schedule(client, FakeClock())
    final = steps[-1][1]
    assert (final.verdict, final.reason, final.pending.attempts) == ("dead", "retries_exhausted", 8)
    assert final.pending.last_status == 500 and final.pending.last_error == "HTTP 500"


async def test_retry_after_is_honoured_between_attempts():
    seen: list = []
    answers = [httpx.Response(429, headers={"retry-after": "90"}), httpx.Response(200)]
    async with client_answering(answers, seen) as client:
        steps = await run_schedule(client, FakeClock())
    assert [(when - T0).total_seconds() for when, _ in steps] == [0, 90]


@pytest.mark.parametrize("answer, verdict, reason", [
    (httpx.Response(410), "disable", "http_410"),
    (httpx.Response(404), "dead", "http_404"),
    (httpx.Response(302, headers={"location": "http://169.254.169.254/"}), "dead", "http_302"),
])
async def test_final_verdicts_take_one_request(answer, verdict, reason):
    seen: list = []
    async with client_answering([answer], seen) as client:
        steps = await run_schedule(client, FakeClock())
    assert len(seen) == 1, "redirects are not followed and 4xx are not retried"
    assert (steps[-1][1].verdict, steps[-1][1].reason) == (verdict, reason)


async def test_network_errors_are_retried_and_reported_without_url_or_token():
    seen: list = []
    errors = [httpx.ReadTimeout(f"timed out talking to {URL}"),
              httpx.ConnectError("refused /services/T0/B0/tok3n-in-path?token=q5ecret"), httpx.Response(200)]
    async with client_answering(errors, seen) as client:
        steps = await run_schedule(client, FakeClock())
    assert [step.reason for _, step in steps] == ["timeout", "connect_error", "http_2xx"]
    for _, step in steps[:2]:
        assert "tok3n" not in step.pending.last_error and "q5ecret" not in step.pending.last_error
        assert "<url>" in step.pending.last_error


async def test_extra_headers_and_chat_formats():
    seen: list = []
    async with client_answering([httpx.Response(200)], seen) as client:
        await attempt(client, pending(), subscription(), endpoint(headers={"X-Api-Key": "k-1"}), T0, 15)
        body = json.dumps({"type": "newswatch.digest", "version": 1, "id": "msg_d", "timestamp": "2026-11-29T06:00:00Z",
                           "subscription": "desk", "count": 0, "alerts": []})
        slack_pending = pending().model_copy(update={"body": body, "kind": "digest"})
        await attempt(client, slack_pending, subscription(format="slack"), endpoint(secret=None), T0, 15)
    assert seen[0].headers["x-api-key"] == "k-1" and seen[0].headers["content-type"] == "application/json"
    assert "blocks" in json.loads(seen[1].content) and "webhook-signature" not in seen[1].headers
    assert seen[1].headers["webhook-id"] == "msg_fixed"


async def test_one_hanging_subscription_never_delays_the_others():
    release = asyncio.Event()
    done: list[str] = []

    async def handle(item: PendingDelivery) -> None:
        if item.subscription == "dead-end":
            await release.wait()
        done.append(item.id)

    pool = DeliveryPool(handle, per_host=4, host_for=lambda name: f"host-{name}")
    pool.submit(pending("stuck").model_copy(update={"subscription": "dead-end"}))
    for i in range(20):
        pool.submit(pending(f"m{i}").model_copy(update={"subscription": f"healthy{i % 5}"}))
    await async_wait_until(lambda: len(done) == 20, 5, "healthy subscriptions delivered while one hangs")
    assert sorted(done) == sorted(f"m{i}" for i in range(20))
    release.set()
    await async_wait_until(lambda: "stuck" in done, 5, "the hanging delivery finishes once released")
    await pool.close()


async def test_concurrency_per_host_is_bounded():
    running, peak, finished = 0, 0, 0

    async def handle(item: PendingDelivery) -> None:
        nonlocal running, peak, finished
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.02)  # hold the slot a moment so overlaps can happen
        running -= 1
        finished += 1

    pool = DeliveryPool(handle, per_host=2, host_for=lambda name: "one-host")
    for i in range(6):
        pool.submit(pending(f"m{i}").model_copy(update={"subscription": f"s{i}"}))
    await async_wait_until(lambda: finished == 6, 5, "all six deliveries ran")
    assert peak == 2
    await pool.close()


def test_host_key_includes_scheme_and_port():
    assert host_of("https://hooks.slack.com/services/x") == "https://hooks.slack.com:443"
    assert host_of("http://127.0.0.1:8787/") == "http://127.0.0.1:8787"
