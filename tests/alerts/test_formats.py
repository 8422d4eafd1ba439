"""Slack, Discord and Teams bodies carry the same facts as the JSON alert, with Arabic text intact."""

import json

import pytest

from alerts import formats, noise
from alerts.payload import build_digest, encode_payload
from alerts.settings import GroupingSettings
from newswatch.schemas import AlertPayload
from tests.alerts.factories import ARABIC_TITLE, T0, hit, match


@pytest.fixture
def alert() -> AlertPayload:
    state = None
    for m in (match(article_id="a1", source="RT Arabic", lang="ar", title=ARABIC_TITLE,
                    topics=(hit("s400", 0.92, "high", "إس-400", snippet="صفقة منظومة إس-400 مع <مصر> & روسيا"),)),
              match(article_id="a2", source="Reuters", lang="en")):
        state, _ = noise.observe(state, "desk", m, m.topics, T0, GroupingSettings())
    return encode_payload(state, "msg_f", T0)[0]


def text_of(body) -> str:
    return json.dumps(body, ensure_ascii=False)


@pytest.mark.parametrize("name", ["slack", "discord", "teams"])
def test_every_format_carries_the_same_facts(alert, name):
    text = text_of(formats.FORMATTERS[name](alert))
    for fact in (ARABIC_TITLE, "https://news.example/a1", "RT Arabic", "Reuters", "story-1", "S400", "high",
                 "0.92", "إس-400", "2026-11-29T06:00:00Z", "ar"):
        assert fact in text, f"{name} lacks {fact!r}"


@pytest.mark.parametrize("name", ["slack", "discord", "teams"])
def test_arabic_is_isolated_not_altered(alert, name):
    text = text_of(formats.FORMATTERS[name](alert))
    assert f"{formats.FSI}{ARABIC_TITLE}{formats.PDI}" in text


def test_slack_escapes_control_characters_and_links_the_title(alert):
    body = formats.slack(alert)
    section = body["blocks"][0]["text"]["text"]
    assert section.startswith("*<https://news.example/a1|")
    assert "&lt;مصر&gt; &amp; روسيا" in section


def test_discord_never_pings_and_respects_limits(alert):
    body = formats.discord(alert)
    assert body["allowed_mentions"] == {"parse": []}
    embed = body["embeds"][0]
    assert embed["url"] == "https://news.example/a1" and len(embed["title"]) <= 256


def test_teams_card_is_right_to_left_for_arabic(alert):
    card = formats.teams(alert)["attachments"][0]["content"]
    assert card["type"] == "AdaptiveCard" and card["rtl"] is True
    assert card["actions"][0]["url"] == "https://news.example/a1"
    english = alert.model_copy(update={"article": {**alert.article, "lang": "en"}})
    assert formats.teams(english)["attachments"][0]["content"]["rtl"] is False


@pytest.mark.parametrize("name", ["slack", "discord", "teams"])
def test_digests_render_in_every_format(name):
    held = (noise.HeldAlert(story_id="s1", title=ARABIC_TITLE, url="https://n.example/1", source="RT", lang="ar",
                            topics=("s400",), sources_count=3, held_at=T0),)
    text = text_of(formats.FORMATTERS[name](build_digest("desk", held, "msg_d", T0)))
    assert ARABIC_TITLE in text and "https://n.example/1" in text and "1 alerts" in text


@pytest.mark.parametrize("name", ["slack", "discord", "teams"])
def test_every_format_shows_the_countries_systems_and_deal_sides(name):
    from newswatch.schemas import Entity, Parties

    entities = (Entity(type="country", id="EG", name="Egypt"), Entity(type="country", id="RU", name="Russia"),
                Entity(type="system", id="S-400", name="S-400"),
                Entity(type="person", id="sergey_lavrov", name="Sergey Lavrov", office="foreign minister", country="RU"))
    m = match(article_id="a1", source="RT Arabic", lang="ar", title=ARABIC_TITLE).model_copy(
        update={"entities": entities, "parties": Parties(supplier="RU", recipient="EG")})
    state, _ = noise.observe(None, "desk", m, m.topics, T0, GroupingSettings())
    alert = encode_payload(state, "msg_e", T0)[0]
    text = text_of(formats.FORMATTERS[name](alert))
    for fact in ("Countries", "EG, RU", "Systems", "S-400", "RU → EG"):
        assert fact in text, f"{name} lacks {fact!r}"
    assert [e.id for e in alert.entities] == ["EG", "RU", "S-400", "sergey_lavrov"]
