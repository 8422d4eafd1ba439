"""The records that travel between stages (docs/contracts.md), and their JSON form on Kafka.

Every record carries `"schema": "newswatch.<kind>/v<major>"`. `encode()` writes compact
UTF-8 JSON that keeps Arabic and Cyrillic as they are; `decode()` refuses anything that
is not JSON, not an object, of another kind or of an unknown major version, with a
SchemaError whose reason is fit for a dead-letter record.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar

import pydantic

from newswatch.errors import SchemaError

SCHEMA_PREFIX = "newswatch."
ARTICLE_SCHEMA = "newswatch.article/v1"
MATCH_SCHEMA = "newswatch.match/v1"
DEAD_LETTER_SCHEMA = "newswatch.dead_letter/v1"
ALERT_TYPE = "newswatch.alert"
ALERT_VERSION = 1

_SCHEMA_RE = re.compile(r"^newswatch\.(?P<kind>[a-z_]+)/v(?P<major>\d+)(?:\.\d+)?$")


def _to_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamp must carry a time zone (UTC ISO-8601)")
    return value.astimezone(timezone.utc)


UtcDatetime = Annotated[
    datetime,
    pydantic.AfterValidator(_to_utc),
    pydantic.PlainSerializer(lambda v: v.strftime("%Y-%m-%dT%H:%M:%S.%fZ").replace(".000000Z", "Z"),
                             return_type=str),
]


class Record(pydantic.BaseModel):
    """Base for Kafka records: immutable, and unknown fields kept out of the model but tolerated."""

    model_config = pydantic.ConfigDict(frozen=True, extra="ignore", populate_by_name=True)
    SCHEMA: ClassVar[str]

    def encode(self) -> bytes:
        """Compact UTF-8 JSON with the `schema` field (non-ASCII text is not escaped)."""
        return self.model_dump_json(by_alias=True).encode("utf-8")

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


class FeedRef(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True, extra="ignore")
    url: str
    title: str | None = None


class ArticleFields(Record):
    """The fields every article-bearing record shares (Article v1; Match v1 adds to them)."""

    id: str = pydantic.Field(min_length=1)
    url: str | None = None
    title: str = ""
    text: str = ""
    summary: str = ""
    lang: str | None = None
    published_at: UtcDatetime | None = None
    fetched_at: UtcDatetime
    feed: FeedRef
    source: str | None = None
    authors: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    # Where `text` came from: the feed entry, or the article's page (ingest fetched it because the
    # feed carried only a teaser). Optional within v1: records written before it have none.
    text_source: Literal["feed", "page"] | None = pydantic.Field(
        default=None, description="where `text` came from: the feed entry, or the article's page that ingest "
                                  "fetched because the feed carried a teaser; absent from older v1 records")


class Article(ArticleFields):
    """Article v1: one feed entry, as ingest publishes it to `<prefix>articles`."""

    SCHEMA: ClassVar[str] = ARTICLE_SCHEMA
    schema_: Literal["newswatch.article/v1"] = pydantic.Field(default=ARTICLE_SCHEMA, alias="schema")


class Evidence(pydantic.BaseModel):
    """Where a term was found: offsets index the original (not normalised) field text."""

    model_config = pydantic.ConfigDict(frozen=True, extra="ignore")
    term: str
    field: Literal["title", "text", "summary"]
    start: int = pydantic.Field(ge=0)
    end: int = pydantic.Field(ge=0)
    snippet: str


class TopicHit(pydantic.BaseModel):
    """One topic raised for one article, with the rule that fired and the evidence."""

    model_config = pydantic.ConfigDict(frozen=True, extra="ignore")
    topic: str
    title: str
    severity: str
    score: float
    rule: str
    evidence: tuple[Evidence, ...] = ()


class EntityEvidence(pydantic.BaseModel):
    """Where an entity was named: offsets index the original (not normalised) field text."""

    model_config = pydantic.ConfigDict(frozen=True, extra="ignore")
    term: str
    field: Literal["title", "text", "summary"]
    start: int = pydantic.Field(ge=0)
    end: int = pydantic.Field(ge=0)


class Entity(pydantic.BaseModel):
    """A country (ISO 3166 alpha-2 id), weapon system (canonical name) or office holder the
    article names, from the gazetteer; a person carries the office held on the article's date."""

    model_config = pydantic.ConfigDict(frozen=True, extra="ignore")
    type: Literal["country", "system", "person"]
    id: str
    name: str
    evidence: tuple[EntityEvidence, ...] = ()
    office: str | None = pydantic.Field(default=None, description="person only: the office held on the "
                                                                  "article's date, e.g. 'foreign minister'")
    country: str | None = pydantic.Field(default=None, description="person only: the country of that office")


class Parties(pydantic.BaseModel):
    """The two sides of an arms deal, as country codes, when one sentence names both with a cue
    saying which way the arms go ("Russia delivered S-400 to Turkey")."""

    model_config = pydantic.ConfigDict(frozen=True, extra="ignore")
    supplier: str
    recipient: str
    evidence: tuple[EntityEvidence, ...] = ()


class Source(pydantic.BaseModel):
    """One publication of a story: which feed carried it, under which article id and link."""

    model_config = pydantic.ConfigDict(frozen=True, extra="ignore")
    article_id: str
    source: str | None = None
    url: str | None = None
    feed_url: str | None = None
    published_at: UtcDatetime | None = None


class Match(ArticleFields):
    """Match v1: an article that raised at least one topic, keyed on Kafka by story id."""

    SCHEMA: ClassVar[str] = MATCH_SCHEMA
    schema_: Literal["newswatch.match/v1"] = pydantic.Field(default=MATCH_SCHEMA, alias="schema")
    story_id: str
    topics: tuple[TopicHit, ...]
    sources: tuple[Source, ...] = ()
    watchlist_version: str
    detected_at: UtcDatetime
    # Optional within v1: matches written before the gazetteer (or without one) have none.
    entities: tuple[Entity, ...] = pydantic.Field(
        default=(), description="countries, weapon systems and office holders the article names; absent from "
                                "older v1 records")
    parties: Parties | None = pydantic.Field(
        default=None, description="supplier and recipient of an arms deal, when one sentence names both")


class DeadLetter(Record):
    """A record a stage could not handle, kept with the reason (for `<prefix>articles.dlq`)."""

    SCHEMA: ClassVar[str] = DEAD_LETTER_SCHEMA
    schema_: Literal["newswatch.dead_letter/v1"] = pydantic.Field(default=DEAD_LETTER_SCHEMA, alias="schema")
    stage: str
    error: str
    time: UtcDatetime
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    key: str | None = None
    value: str | None = pydantic.Field(default=None, description="the original bytes, as UTF-8 text when they are")
    value_base64: str | None = None


class AlertPayload(pydantic.BaseModel):
    """The webhook body (docs/contracts.md, alert version 1): a versioned contract separate from Match."""

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")
    type: Literal["newswatch.alert"] = ALERT_TYPE
    version: Literal[1] = ALERT_VERSION
    id: str
    timestamp: UtcDatetime
    subscription: str
    story_id: str
    reason: Literal["first", "changed", "test"] = "first"  # a new story, a follow-up, or `alerts test`
    sequence: int = 1  # 1 for a story's first alert, 2, 3... for follow-ups
    sources_count: int = 0  # every known source, even when `sources` was cut to fit the size limit
    truncated: bool = False  # evidence, snippets or sources were cut to keep the body under 20 kB
    sources: tuple[Source, ...]
    topics: tuple[TopicHit, ...]
    article: dict[str, Any]
    entities: tuple[Entity, ...] = ()  # the story's latest match's entities (countries, systems, persons)
    parties: Parties | None = None


R = TypeVar("R", bound=Record)


def schema_kind(schema: str) -> tuple[str, int]:
    """Split `newswatch.article/v1` into ("article", 1); SchemaError when it is not of that form."""
    match = _SCHEMA_RE.match(schema)
    if not match:
        raise SchemaError(f"unrecognised schema {schema!r}")
    return match["kind"], int(match["major"])


def decode(raw: bytes | str | None, model: type[R]) -> R:
    """Parse one Kafka value into `model`, or raise SchemaError with a reason a person can act on."""
    if raw is None:
        raise SchemaError("empty record (null value)")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SchemaError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise SchemaError(f"expected a JSON object, got {type(data).__name__}")
    escapes = (b"\\ud", b"\\uD") if isinstance(raw, bytes) else ("\\ud", "\\uD")
    if escapes[0] in raw or escapes[1] in raw:  # a UTF-16 half, maybe a lone one
        data = _without_lone_surrogates(data)
    schema = data.get("schema")
    if not isinstance(schema, str):
        raise SchemaError("missing 'schema' field")
    kind, major = schema_kind(schema)
    want_kind, want_major = schema_kind(model.SCHEMA)
    if kind != want_kind:
        raise SchemaError(f"expected a {want_kind} record, got schema {schema!r}")
    if major != want_major:
        raise SchemaError(f"unsupported schema version {schema!r} (this reader understands v{want_major})")
    data["schema"] = model.SCHEMA  # a minor version we do not know is still readable
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[:3]
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in first)
        raise SchemaError(f"invalid {kind} record: {detail}") from None


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def replace_lone_surrogates(text: str) -> str:
    """`text` with each lone UTF-16 half (which no UTF-8 text can hold) as U+FFFD: one character
    for one, so offsets into the text stay right."""
    return _LONE_SURROGATE.sub("\ufffd", text)


def _without_lone_surrogates(value: Any) -> Any:
    """JSON may escape half of a UTF-16 pair ("\\ud800"): such a record would pass validation and
    then fail in the matcher or when re-encoded, so every string gets replace_lone_surrogates."""
    if isinstance(value, str):
        return replace_lone_surrogates(value)
    if isinstance(value, dict):
        return {key: _without_lone_surrogates(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_lone_surrogates(item) for item in value]
    return value


def dumps(value: Any) -> str:
    """JSON for people and JSON-lines files: UTF-8 text kept as is, compact separators."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)



ARTICLE_SCHEMA_FILE = Path(__file__).parent / "schema" / "article-v1.schema.json"


def article_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of Article v1 as ingest writes it to `<prefix>articles`.

    Fields with a default may be absent from records written by older versions (`text_source`
    arrived within v1); readers must ignore fields they do not know."""
    schema = Article.model_json_schema(mode="serialization", by_alias=True)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "https://newswatch.invalid/schema/article-v1.schema.json",
            "title": "newswatch Article, version 1", **{k: v for k, v in schema.items() if k != "title"}}


if __name__ == "__main__":  # regenerate the published schema: python -m newswatch.schemas
    ARTICLE_SCHEMA_FILE.write_text(json.dumps(article_json_schema(), indent=2, ensure_ascii=False) + "\n",
                                   encoding="utf-8")
    print(ARTICLE_SCHEMA_FILE)
