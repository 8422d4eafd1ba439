"""What the console changes: a replay of a dead letter, and silences in the subscriptions file.

A replay is what `newswatch alerts replay --id` does: the same webhook-id and body, signed now,
with the subscription's secrets from this process's environment. Outcomes are short words for
the page, never a URL or a header.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pydantic

from alerts.durations import parse_duration
from alerts.records import AlertDeadLetter, PendingDelivery
from newswatch.errors import NewswatchError


async def replay_letter(config_path: Path | None, letter: AlertDeadLetter) -> str:
    from alerts.cli import http_client, load_stage
    from alerts.deliver import attempt

    try:
        stage = load_stage(config_path)
    except NewswatchError as exc:
        return f"not replayed: {str(exc).splitlines()[0][:200]}"
    if letter.subscription not in stage.endpoints:
        return "not replayed: the subscription is no longer configured or is disabled"
    sub = next(s for s in stage.subscriptions.subscriptions if s.name == letter.subscription)
    now = datetime.now(timezone.utc)
    pending = PendingDelivery(id=letter.id, subscription=letter.subscription, kind=letter.kind,
                              story_id=letter.story_id, body=letter.body, created_at=letter.created_at,
                              next_attempt_at=now)
    async with http_client(stage.settings) as client:
        result = await attempt(client, pending, sub, stage.endpoints[sub.name], now, stage.settings.timeout)
    if result.status is not None and 200 <= result.status < 300:
        return f"replayed: HTTP {result.status}"
    return f"replay failed: HTTP {result.status}" if result.status is not None else f"replay failed: {result.error}"


def add_silence(path: Path | None, *, topic: str, source: str, language: str, term: str, duration: str,
                comment: str) -> str:
    from alerts.silences import add_silence as add
    from alerts.subscriptions import Silence, SilenceMatchers

    if path is None:
        return "no subscriptions file configured"
    try:
        expires = datetime.now(timezone.utc) + timedelta(seconds=parse_duration(duration.strip() or "2h"))
        matchers = SilenceMatchers(topic=topic.strip() or None, source=source.strip() or None,
                                   language=language.strip() or None, term=term.strip() or None)
        add(path, Silence(matchers=matchers, expires_at=expires, comment=comment.strip()))
    except pydantic.ValidationError as exc:
        return "not added: " + exc.errors()[0]["msg"].removeprefix("Value error, ")
    except (ValueError, OSError, NewswatchError) as exc:
        return f"not added: {str(exc).splitlines()[0][:200]}"
    return f"silence added until {expires.strftime('%Y-%m-%dT%H:%M:%SZ')}"


def expire_silence(path: Path | None, number: int) -> str:
    from alerts.silences import remove_silences

    if path is None:
        return "no subscriptions file configured"
    try:
        removed = remove_silences(path, [number])
    except (ValueError, OSError, NewswatchError) as exc:
        return f"not removed: {str(exc).splitlines()[0][:200]}"
    return f"silence #{number} removed" if removed else "nothing removed"
