"""Signatures are checked with the official standardwebhooks library, exactly as a receiver would."""

import base64
import time
from datetime import datetime, timedelta, timezone

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from alerts.signing import BadSecretError, delivery_id, sign_headers, signing_key
from newswatch.secrets import Secret

RAW_KEY = b"0123456789abcdef0123456789abcdef"
WHSEC = "whsec_" + base64.b64encode(RAW_KEY).decode()
BODY = '{"type":"newswatch.alert","article":{"title":"مصر تبحث شراء منظومة إس-400"}}'.encode()


def now() -> datetime:
    return datetime.now(timezone.utc)


def test_library_verifies_our_signature_with_the_whsec_secret():
    headers = sign_headers(signing_key(Secret(WHSEC)), "msg_abc", now(), BODY)
    assert Webhook(WHSEC).verify(BODY, headers)["article"]["title"].startswith("مصر")
    assert headers["webhook-signature"].startswith("v1,")
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 2, "whole seconds, now"


def test_plain_text_secret_is_used_as_its_bytes():
    headers = sign_headers(signing_key(Secret("correct horse battery")), "msg_abc", now(), BODY)
    Webhook(b"correct horse battery").verify(BODY, headers)


def test_tampered_body_fails():
    headers = sign_headers(signing_key(Secret(WHSEC)), "msg_abc", now(), BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(WHSEC).verify(BODY.replace("400".encode(), "300".encode()), headers)


def test_tampered_id_fails():
    headers = sign_headers(signing_key(Secret(WHSEC)), "msg_abc", now(), BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(WHSEC).verify(BODY, {**headers, "webhook-id": "msg_other"})


def test_timestamp_six_minutes_old_fails():
    headers = sign_headers(signing_key(Secret(WHSEC)), "msg_abc", now() - timedelta(minutes=6), BODY)
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(WHSEC).verify(BODY, headers)


def test_wrong_secret_fails():
    headers = sign_headers(signing_key(Secret(WHSEC)), "msg_abc", now(), BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + base64.b64encode(b"another key entirely!").decode()).verify(BODY, headers)


def test_malformed_whsec_secret_is_a_clear_error_without_the_value():
    with pytest.raises(BadSecretError, match="MY_SECRET") as info:
        signing_key(Secret("whsec_not*base64!", "MY_SECRET"))
    assert "not*base64" not in str(info.value)


def test_delivery_id_is_stable_and_depends_on_what_the_alert_says():
    first = delivery_id("desk", "story-1", ["s400", "patriot"], ["a1", "a2"])
    assert first == delivery_id("desk", "story-1", ["patriot", "s400", "s400"], ["a2", "a1"])
    assert first.startswith("msg_")
    others = {delivery_id("other", "story-1", ["s400", "patriot"], ["a1", "a2"]),
              delivery_id("desk", "story-2", ["s400", "patriot"], ["a1", "a2"]),
              delivery_id("desk", "story-1", ["s400"], ["a1", "a2"]),
              delivery_id("desk", "story-1", ["s400", "patriot"], ["a1", "a2", "a3"])}
    assert first not in others and len(others) == 4
