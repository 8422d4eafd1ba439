import json
from datetime import datetime, timedelta, timezone

import pytest

from newswatch.errors import SchemaError
from newswatch.schemas import (Article, DeadLetter, Evidence, Match, TopicHit, decode, schema_kind)

NOW = datetime(2026, 11, 29, 10, 30, tzinfo=timezone.utc)


def make_article(**overrides) -> Article:
    fields = dict(
        id="rt-ar-2plus2", url="https://example.test/ar/news/1", title="لافروف وشويغو يستقبلان نظيريهما المصريين",
        text="Министры обороны обсудили поставки С-400. وزيرا الخارجية والدفاع", summary="ملخص",
        lang="ar", published_at=NOW - timedelta(hours=1), fetched_at=NOW,
        feed={"url": "https://example.test/ar/rss", "title": "RT Arabic"}, source="RT Arabic",
        authors=["مراسل"], tags=["روسيا", "مصر"])
    fields.update(overrides)
    return Article(**fields)


def test_article_round_trips_with_utf8_kept_as_is():
    article = make_article()
    raw = article.encode()
    assert "لافروف".encode() in raw and "С-400".encode() in raw
    assert b"\\u" not in raw
    assert b'"schema":"newswatch.article/v1"' in raw
    assert decode(raw, Article) == article


def test_lone_utf16_halves_from_foreign_producers_become_replacement_characters():
    # Another producer's JSON may escape half a surrogate pair; UTF-8 cannot hold it, so it
    # would fail later (in the matcher, or re-encoding the Match). A whole pair stays one emoji.
    raw = make_article().encode().replace("ملخص".encode(), b"S-400 \\ud800 \\uDFFF \\ud83d\\ude00")
    article = decode(raw, Article)
    assert article.summary == "S-400 \ufffd \ufffd \U0001f600"
    assert decode(article.encode(), Article) == article


def test_timestamps_are_serialised_as_utc_iso8601():
    moscow = timezone(timedelta(hours=3))
    article = make_article(published_at=datetime(2026, 2, 13, 12, 0, tzinfo=moscow))
    assert article.to_json_dict()["published_at"] == "2026-02-13T09:00:00Z"


def test_naive_timestamps_are_refused():
    with pytest.raises(ValueError, match="time zone"):
        make_article(fetched_at=datetime(2026, 1, 1))


def test_match_carries_article_fields_topics_and_version():
    article = make_article()
    hit = TopicHit(topic="air_defense_system", title="Air defence", severity="high", score=0.9, rule="any_term",
                   evidence=[Evidence(term="С-400", field="text", start=37, end=42, snippet="поставки С-400.")])
    match = Match(**article.model_dump(exclude={"schema_"}), story_id="s1", topics=[hit],
                  watchlist_version="abc123", detected_at=NOW)
    back = decode(match.encode(), Match)
    assert back == match
    assert back.topics[0].evidence[0].term == "С-400"
    assert back.to_json_dict()["schema"] == "newswatch.match/v1"


@pytest.mark.parametrize("raw, reason", [
    (b"\xff\xfe not json", "not JSON"),
    (b"{broken", "not JSON"),
    (b"[1, 2]", "expected a JSON object"),
    (b'{"id": "x"}', "missing 'schema'"),
    (b'{"schema": "something/else"}', "unrecognised schema"),
    (b'{"schema": "newswatch.match/v1"}', "expected a article record"),
    (b'{"schema": "newswatch.article/v99", "id": "x"}', "unsupported schema version"),
    (b'{"schema": "newswatch.article/v1", "id": ""}', "invalid article record"),
    (None, "empty record"),
])
def test_decode_refuses_bad_records_with_a_reason(raw, reason):
    with pytest.raises(SchemaError, match=reason):
        decode(raw, Article)


def test_unknown_minor_version_and_extra_fields_are_readable():
    data = make_article().to_json_dict()
    data["schema"] = "newswatch.article/v1.4"
    data["added_in_v1_4"] = True
    import json
    article = decode(json.dumps(data).encode(), Article)
    assert article.id == "rt-ar-2plus2"
    assert article.to_json_dict()["schema"] == "newswatch.article/v1"


@pytest.mark.parametrize("schema, expected", [
    ("newswatch.article/v1", ("article", 1)),
    ("newswatch.dead_letter/v2", ("dead_letter", 2)),
    ("newswatch.match/v1.2", ("match", 1)),
])
def test_schema_kind(schema, expected):
    assert schema_kind(schema) == expected


def test_dead_letter_keeps_original_bytes_and_reason():
    letter = DeadLetter(stage="process", error="not JSON", time=NOW, topic="newswatch.articles", partition=0,
                        offset=7, key="k", value="garbage")
    back = decode(letter.encode(), DeadLetter)
    assert (back.error, back.offset, back.value) == ("not JSON", 7, "garbage")


def test_the_published_article_schema_is_the_model_and_text_source_is_optional_in_v1():
    import jsonschema

    from newswatch.schemas import ARTICLE_SCHEMA_FILE, Article, FeedRef, article_json_schema, decode

    published = json.loads(ARTICLE_SCHEMA_FILE.read_text(encoding="utf-8"))
    assert published == article_json_schema(), "regenerate: python -m newswatch.schemas"
    validator = jsonschema.Draft202012Validator(published)
    old = {"schema": "newswatch.article/v1", "id": "a", "fetched_at": "2026-12-01T00:00:00Z",
           "feed": {"url": "https://example.org/rss"}}
    assert decode(json.dumps(old).encode(), Article).text_source is None  # written before the field existed
    validator.validate(old)
    page = Article(id="a", text="x", fetched_at=datetime(2026, 12, 1, tzinfo=timezone.utc),
                   feed=FeedRef(url="https://example.org/rss"), text_source="page")
    validator.validate(json.loads(page.encode()))
    assert list(validator.iter_errors({**old, "text_source": "web"}))
