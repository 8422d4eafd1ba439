"""The webhook body: the published JSON Schema, the 20 kB limit, truncation marks, text kept intact."""

import json

import jsonschema
import pytest

from alerts import noise
from alerts.payload import (MAX_BODY_BYTES, SCHEMA_FILE, build_digest, encode_body, encode_payload,
                            json_schema)
from alerts.settings import GroupingSettings
from tests.alerts.factories import ARABIC_TITLE, RUSSIAN_TITLE, T0, hit, match

VALIDATOR = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))


def story(*matches):
    state = None
    for m in matches:
        state, _ = noise.observe(state, "desk", m, m.topics, T0, GroupingSettings())
    return state


def test_published_schema_file_is_current():
    assert json.loads(SCHEMA_FILE.read_text(encoding="utf-8")) == json_schema(), \
        "regenerate with: python -m alerts.payload"
    jsonschema.Draft202012Validator.check_schema(json_schema())


def test_alert_body_validates_and_carries_the_facts():
    state = story(match(article_id="a1", source="RT Arabic", lang="ar", title=ARABIC_TITLE),
                  match(article_id="a2", source="TASS", lang="ru", title=RUSSIAN_TITLE,
                        topics=(hit("s400", term="С-400"), hit("patriot"))))
    payload, raw = encode_payload(state, "msg_1", T0)
    body = json.loads(raw)
    VALIDATOR.validate(body)
    assert (body["type"], body["version"], body["id"], body["subscription"]) == ("newswatch.alert", 1, "msg_1", "desk")
    assert body["story_id"] == "story-1" and body["sources_count"] == 2 and body["reason"] == "first"
    assert body["article"]["title"] == ARABIC_TITLE and body["article"]["lang"] == "ar"
    assert [t["topic"] for t in body["topics"]] == ["s400", "patriot"]
    assert body["topics"][0]["evidence"][0]["snippet"]
    assert ARABIC_TITLE.encode() in raw, "Arabic is sent as UTF-8, not \\u-escaped"
    assert body["truncated"] is False


def test_follow_up_says_so():
    state = noise.release(story(match()), T0)
    state, _ = noise.observe(state, "desk", match(article_id="a2"), (hit(),), T0, GroupingSettings())
    body = json.loads(encode_payload(state, "msg_2", T0)[1])
    assert (body["reason"], body["sequence"]) == ("changed", 2)


@pytest.mark.parametrize("evidence, snippet_chars, sources", [(40, 5000, 3), (3, 200, 2000), (200, 300, 300)])
def test_huge_stories_are_cut_to_20kB_and_marked(evidence, snippet_chars, sources):
    snippet = ("صفقة منظومة إس-400 " * 1000)[:snippet_chars]
    topics = tuple(hit(f"topic{i}", snippet=snippet, evidence=evidence) for i in range(6))
    state = story(match(topics=topics, summary="ملخص " * 3000, known_sources=tuple(f"x{i}" for i in range(sources))))
    payload, raw = encode_payload(state, "msg_big", T0)
    assert len(raw) <= MAX_BODY_BYTES
    body = json.loads(raw)
    VALIDATOR.validate(body)
    assert body["truncated"] is True
    assert body["sources_count"] == sources + 1, "the count keeps every source even when the list is cut"
    cut_texts = [e["snippet"] for t in body["topics"] for e in t["evidence"]] + [body["article"]["summary"] or ""]
    assert any(text.endswith("…") for text in cut_texts) or not any(t["evidence"] for t in body["topics"])


def test_digest_body_validates():
    held = tuple(noise.HeldAlert(story_id=f"s{i}", title=ARABIC_TITLE, url=f"https://n.example/{i}", source="RT",
                                 lang="ar", topics=("s400",), sources_count=2, held_at=T0) for i in range(3))
    body = json.loads(encode_body(build_digest("desk", held, "msg_d", T0)))
    VALIDATOR.validate(body)
    assert (body["type"], body["count"], len(body["alerts"])) == ("newswatch.digest", 3, 3)


def test_schema_rejects_what_it_should():
    state = story(match())
    body = json.loads(encode_payload(state, "msg_1", T0)[1])
    for broken in ({**body, "version": 2}, {**body, "extra": 1}, {k: v for k, v in body.items() if k != "story_id"}):
        with pytest.raises(jsonschema.ValidationError):
            VALIDATOR.validate(broken)
