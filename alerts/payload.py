"""The webhook body: `newswatch.alert` v1 (one story) and `newswatch.digest` v1 (throttled alerts).

`build_payload()` turns a story's merged state into the versioned contract of docs/contracts.md;
`encode_payload()` gives the exact bytes to sign and send, never more than MAX_BODY_BYTES:
evidence, snippets, the summary and then the source list are cut step by step, and the body
says so (`truncated: true`, cut texts end with "…"). The JSON Schema of both bodies is
published in alerts/schema/alert-v1.schema.json (`json_schema()` generates it).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Union

import pydantic

from alerts.noise import HeldAlert, StoryState
from newswatch.schemas import AlertPayload, Evidence, Source, TopicHit, UtcDatetime, dumps

MAX_BODY_BYTES = 20_000
ELLIPSIS = "…"
SCHEMA_FILE = Path(__file__).parent / "schema" / "alert-v1.schema.json"

# Successive budgets: (evidence per topic, snippet chars, summary chars, sources listed).
# The first fits any ordinary story; the later ones only bite on pathological inputs.
_BUDGETS = ((5, 300, 1000, 100), (3, 160, 400, 50), (1, 80, 160, 20), (0, 0, 0, 10), (0, 0, 0, 0))


class DigestPayload(pydantic.BaseModel):
    """Alerts held back by a subscription's throttle, sent together as one body."""

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")
    type: Literal["newswatch.digest"] = "newswatch.digest"
    version: Literal[1] = 1
    id: str
    timestamp: UtcDatetime
    subscription: str
    count: int
    alerts: tuple[HeldAlert, ...]


WebhookBody = Union[AlertPayload, DigestPayload]


def cut(text: str | None, limit: int) -> tuple[str | None, bool]:
    """`text` shortened to `limit` characters with a trailing "…" when cut; (text, was_cut)."""
    if text is None or len(text) <= limit:
        return text, False
    return (text[: max(limit - 1, 0)].rstrip() + ELLIPSIS) if limit > 0 else "", True


def _article(state: StoryState, summary_chars: int) -> tuple[dict[str, Any], bool]:
    match = state.match
    summary, was_cut = cut(match.summary, summary_chars)
    return {"id": match.id, "title": match.title, "url": match.url, "source": match.source,
            "lang": match.lang, "text_source": match.text_source,
            "published_at": _iso(match.published_at), "detected_at": _iso(match.detected_at),
            "feed": {"url": match.feed.url, "title": match.feed.title}, "summary": summary}, was_cut


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _topics(topics: tuple[TopicHit, ...], per_topic: int, snippet_chars: int) -> tuple[tuple[TopicHit, ...], bool]:
    out, was_cut = [], False
    for hit in topics:
        evidence = []
        for item in hit.evidence[:per_topic]:
            snippet, snippet_cut = cut(item.snippet, snippet_chars)
            was_cut |= snippet_cut
            evidence.append(Evidence(term=item.term, field=item.field, start=item.start, end=item.end,
                                     snippet=snippet or ""))
        was_cut |= len(hit.evidence) > per_topic
        out.append(hit.model_copy(update={"evidence": tuple(evidence)}))
    return tuple(out), was_cut


def build_payload(state: StoryState, delivery_id: str, now: datetime, *, budget: int = 0) -> AlertPayload:
    """The alert body for a story as it stands (`budget` indexes ever tighter size budgets)."""
    per_topic, snippet_chars, summary_chars, sources_listed = _BUDGETS[budget]
    topics, topics_cut = _topics(state.topics, per_topic, snippet_chars)
    article, summary_cut = _article(state, summary_chars)
    sources: tuple[Source, ...] = state.sources[:sources_listed]
    return AlertPayload(
        id=delivery_id, timestamp=now, subscription=state.subscription, story_id=state.story_id,
        reason="first" if state.alerts_sent == 0 else "changed", sequence=state.alerts_sent + 1,
        sources_count=len(state.sources), truncated=topics_cut or summary_cut or len(sources) < len(state.sources),
        sources=sources, topics=topics, article=article,
        # Entities keep one evidence each on the tighter budgets (they are short).
        entities=state.match.entities if budget == 0 else tuple(
            e.model_copy(update={"evidence": e.evidence[:1 if per_topic else 0]}) for e in state.match.entities),
        parties=state.match.parties)


def encode_body(body: WebhookBody) -> bytes:
    """Compact UTF-8 JSON (Arabic and Cyrillic kept as they are): the exact bytes that are signed."""
    return dumps(body.model_dump(mode="json")).encode("utf-8")


def encode_payload(state: StoryState, delivery_id: str, now: datetime) -> tuple[AlertPayload, bytes]:
    """The alert body and its bytes, cut to fit MAX_BODY_BYTES (see module docstring)."""
    for budget in range(len(_BUDGETS)):
        payload = build_payload(state, delivery_id, now, budget=budget)
        raw = encode_body(payload)
        if len(raw) <= MAX_BODY_BYTES:
            return payload, raw
    # Only a title of ~20 kB could get here: cut it as the last resort.
    article = dict(payload.article)
    article["title"], _ = cut(article["title"], 2000)
    payload = payload.model_copy(update={"article": article, "truncated": True})
    return payload, encode_body(payload)


def build_digest(subscription: str, held: tuple[HeldAlert, ...], delivery_id: str, now: datetime) -> DigestPayload:
    """One digest body for the alerts a throttle held back (the newest kept when they would not fit)."""
    listed = held
    while True:
        digest = DigestPayload(id=delivery_id, timestamp=now, subscription=subscription, count=len(held),
                               alerts=listed)
        if len(encode_body(digest)) <= MAX_BODY_BYTES or not listed:
            return digest
        listed = listed[len(listed) // 4 + 1:]


def json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of every body newswatch POSTs in the default `json` format."""
    schema = pydantic.TypeAdapter(WebhookBody).json_schema(mode="serialization")
    # Every field is always written (defaults included), so receivers may rely on all of them.
    for definition in schema.get("$defs", {}).values():
        if "properties" in definition:
            definition["required"] = list(definition["properties"])
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "https://newswatch.invalid/schema/alert-v1.schema.json",
            "title": "newswatch webhook body, version 1", **schema}


def write_json_schema(path: Path = SCHEMA_FILE) -> None:
    path.write_text(json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":  # regenerate the published schema: python -m alerts.payload
    write_json_schema()
    print(SCHEMA_FILE)
