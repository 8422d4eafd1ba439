"""Standard Webhooks signing: the delivery id, and the three headers for each attempt.

The id is derived from what the alert says (subscription, story, topics, sources), so a retry,
a replay or a re-send after a crash carries the same `webhook-id` and a receiver can dedupe,
while a follow-up (which exists only because topics or sources changed) gets a new one.
Signing uses the official `standardwebhooks` library over the exact body bytes sent.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable
from datetime import datetime, timezone

from standardwebhooks.webhooks import Webhook

from newswatch.errors import NewswatchError
from newswatch.secrets import Secret

SECRET_PREFIX = "whsec_"


class BadSecretError(NewswatchError):
    """A `whsec_` secret whose rest is not base64 (the message names the variable, never the value)."""


def delivery_id(subscription: str, story_id: str, topics: Iterable[str], sources: Iterable[str]) -> str:
    """A stable `msg_...` id for one alert: the same inputs always give the same id."""
    material = "\x1f".join((subscription, story_id, ",".join(sorted(set(topics))), ",".join(sorted(set(sources)))))
    digest = hashlib.sha256(material.encode("utf-8")).digest()[:18]
    return "msg_" + base64.urlsafe_b64encode(digest).decode("ascii")


def signing_key(secret: Secret) -> bytes:
    """The HMAC key: `whsec_<base64>` decodes to its bytes (the Standard Webhooks form);
    any other value is used as its UTF-8 bytes."""
    value = secret.reveal()
    if value.startswith(SECRET_PREFIX):
        try:
            key = base64.b64decode(value[len(SECRET_PREFIX):], validate=True)
        except (binascii.Error, ValueError):
            raise BadSecretError(f"{secret.env_name or 'secret'}: text after whsec_ is not base64") from None
        if not key:
            raise BadSecretError(f"{secret.env_name or 'secret'}: whsec_ secret is empty")
        return key
    return value.encode("utf-8")


def sign_headers(key: bytes, msg_id: str, sent_at: datetime, body: bytes) -> dict[str, str]:
    """`webhook-id`, `webhook-timestamp` (whole seconds) and `webhook-signature` (`v1,<base64>`)."""
    sent_at = sent_at.astimezone(timezone.utc)
    signature = Webhook(key).sign(msg_id, sent_at, body.decode("utf-8"))
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(sent_at.timestamp())),
            "webhook-signature": signature}


def verify(key: bytes, body: bytes, headers: dict[str, str]) -> object:
    """Check a delivery as a receiver would (StandardWebhooks tolerance: 5 minutes); returns the JSON.

    Raises standardwebhooks' WebhookVerificationError on a bad signature or timestamp.
    """
    return Webhook(key).verify(body, headers)
