"""The console's store without a broker: search through the detector's normalisation, stories
kept up to date, deliveries and dead letters, feeds failing first, retention, highlight segments."""

from __future__ import annotations

from datetime import timedelta

import pytest

from alerts.records import AlertDeadLetter, PendingDelivery
from console.render import direction, highlight
from console.store import Store, StoryFilter, fts_query
from newswatch.config import load_config
from newswatch.errors import ConfigError
from tests.console import factories as f

DAY_MS = 86_400_000


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "console.db", f.kinds())
    yield s
    s.close()


def add(store, *items, offset=0, story=None):
    records = [f.consumed(store.kinds.matches, offset + i, f.match_bytes(item, story)) for i, item in enumerate(items)]
    return store.apply(records, 0)


def titles(rows):
    return [r["title"] for r in rows]


def test_cyrillic_code_finds_latin_code_and_arabic_variants_fold(store):
    russian = f.article("ru1", *f.RUSSIAN_S400, "ru", source="TASS")
    seed = f.article("ar1", f.SEED_TITLE, f.SEED_TEXT, "ar")
    add(store, russian, seed)
    assert titles(store.stories(StoryFilter(q="С-400"))) == [f.RUSSIAN_S400[0]]  # Cyrillic Es
    assert titles(store.stories(StoryFilter(q="s400"))) == [f.RUSSIAN_S400[0]]
    assert titles(store.stories(StoryFilter(q="S 400 Индии"))) == [f.RUSSIAN_S400[0]]
    # ة and ه fold together, hamza forms fold to bare alef: the detector's rules, not raw text
    assert titles(store.stories(StoryFilter(q="زيارة"))) == [f.SEED_TITLE]
    assert titles(store.stories(StoryFilter(q="زياره"))) == [f.SEED_TITLE]
    assert titles(store.stories(StoryFilter(q="الأولية"))) == [f.SEED_TITLE]
    assert store.stories(StoryFilter(q="Mercedes")) == []
    assert store.stories(StoryFilter(q='"')) == []  # nothing searchable: no error


def test_fts_query_expands_model_codes_with_the_detector():
    query = fts_query("С-400")
    assert '"s 400"' in query and '"с400"' in query and " OR " in query


def test_filters_and_story_rows(store):
    seed = f.article("ar1", f.SEED_TITLE, f.SEED_TEXT, "ar", at=f.BASE)
    later = f.article("ar2", "نسخة أخرى: لافروف وشويغو يستقبلان نظيريهما المصريين في موسكو", f.SEED_TEXT, "ar",
                      source="Sputnik Arabic", at=f.BASE + timedelta(hours=1))
    russian = f.article("ru1", *f.RUSSIAN_S400, "ru", source="TASS", at=f.BASE + timedelta(hours=2))
    add(store, seed, later, story="st-seed")
    add(store, russian, offset=2)
    rows = store.stories(StoryFilter())
    assert [r["story_id"] for r in rows] == ["st-ru1", "st-seed"]  # newest first
    seed_row = rows[1]
    assert seed_row["sources_count"] == 2 and seed_row["latest_source"] == "Sputnik Arabic"
    assert seed_row["title"] == f.SEED_TITLE  # the first article's title
    assert set(seed_row["topics"]) == {"air_defense_system", "arms_deal", "ministerial_visit"}
    assert [r["story_id"] for r in store.stories(StoryFilter(topic="ministerial_visit"))] == ["st-seed"]
    assert [r["story_id"] for r in store.stories(StoryFilter(lang="ru"))] == ["st-ru1"]
    assert [r["story_id"] for r in store.stories(StoryFilter(source="Sputnik Arabic"))] == ["st-seed"]
    assert store.stories(StoryFilter(source="Sputnik")) == []  # a whole source name, not a substring
    assert [r["story_id"] for r in store.stories(StoryFilter(since_ms=int((f.BASE + timedelta(hours=2)).timestamp() * 1000)))] == ["st-ru1"]
    assert [r["story_id"] for r in store.stories(StoryFilter(until_ms=int(f.BASE.timestamp() * 1000)))] == ["st-seed"]
    assert store.stories(StoryFilter(min_score=1.5)) == []
    changed = store.stories(StoryFilter(), after_seq=rows[1]["seq"])
    assert [r["story_id"] for r in changed] == ["st-ru1"]  # what the live stream sends after a cursor


def test_a_replayed_match_is_stored_once(store):
    seed = f.article("ar1", f.SEED_TITLE, f.SEED_TEXT, "ar")
    add(store, seed)
    add(store, seed, offset=1)
    assert store.counts()["articles"] == 1
    assert titles(store.stories(StoryFilter(q="لافروف"))) == [f.SEED_TITLE]


def test_deliveries_follow_state_and_dead_letters(store):
    kinds = store.kinds
    at = f.BASE
    body = '{"reason":"first","sequence":1}'
    sent = PendingDelivery(id="msg_a", subscription="desk", story_id="st-1", body=body, created_at=at,
                           next_attempt_at=at)
    dying = PendingDelivery(id="msg_b", subscription="desk", story_id="st-1", body=body, created_at=at,
                            next_attempt_at=at, attempts=3, last_status=500)
    letter = AlertDeadLetter.from_pending(dying, "retries_exhausted", at)
    store.apply([f.consumed(kinds.alerts_state, 0, sent.encode(), key=b"pending/msg_a"),
                 f.consumed(kinds.alerts_state, 1, dying.encode(), key=b"pending/msg_b"),
                 f.consumed(kinds.alerts_state, 2, None, key=b"pending/msg_a"),
                 f.consumed(kinds.alerts_dlq, 0, letter.encode(), key=b"msg_b"),
                 f.consumed(kinds.alerts_state, 3, None, key=b"pending/msg_b"),
                 f.consumed(kinds.alerts_state, 4, b'{"x":1}', key=b"story/desk/st-1")], 0)
    status = {d["webhook_id"]: (d["status"], d["attempts"], d["reason"]) for d in store.deliveries()}
    assert status == {"msg_a": ("delivered", 1, "first"), "msg_b": ("dead", 3, "first")}
    assert [d["webhook_id"] for d in store.dead_letters()] == ["msg_b"]
    assert store.dead_letter("msg_b").body == body
    assert store.offsets()[(kinds.alerts_state, 0)] == 5


def test_feeds_failing_first_with_articles_in_the_last_day(store):
    kinds = store.kinds
    now = f.BASE
    records = [f.consumed(kinds.feed_health, 0, f.feed_health("fd-a", "alpha", failures=0, error=None, total=10,
                                                              at=now - timedelta(hours=30)), at=now - timedelta(hours=30)),
               f.consumed(kinds.feed_health, 1, f.feed_health("fd-a", "alpha", failures=0, error=None, total=14,
                                                              at=now), at=now),
               f.consumed(kinds.feed_health, 2, f.feed_health("fd-z", "zulu", failures=3, error="http_404: HTTP 404"),
                          at=now)]
    store.apply(records, 0)
    feeds = store.feeds(int(now.timestamp() * 1000))
    assert [(x["name"], x["failing"]) for x in feeds] == [("zulu", True), ("alpha", False)]
    assert feeds[0]["last_error"] == "http_404: HTTP 404"
    assert feeds[1]["articles_24h"] == 4  # 14 now, 10 before the day began


def test_retention_drops_old_matches_from_stories_and_search(store):
    old = f.article("ru0", *f.RUSSIAN_S400, "ru", at=f.BASE - timedelta(days=10))
    new = f.article("ar1", f.SEED_TITLE, f.SEED_TEXT, "ar", at=f.BASE)
    add(store, old, new)
    removed = store.prune(int(f.BASE.timestamp() * 1000), 7 * DAY_MS)
    assert removed == 1
    assert [r["story_id"] for r in store.stories(StoryFilter())] == ["st-ar1"]
    assert store.stories(StoryFilter(q="С-400")) == []


def test_highlight_cuts_at_every_boundary_and_keeps_topics_apart():
    text = "Egypt buys S-400 systems"
    segments = highlight(text, [(11, 16, "air"), (0, 10, "deal"), (6, 16, "deal"), (40, 50, "outside")])
    assert "".join(s.text for s in segments) == text
    assert [(s.text, s.topics) for s in segments] == [
        ("Egypt ", ("deal",)), ("buys", ("deal",)), (" ", ("deal",)), ("S-400", ("air", "deal")), (" systems", ())]
    assert highlight("", []) == []
    assert direction("ar") == "rtl" and direction("ru") == "auto" and direction(None) == "auto"


def test_console_section_is_strict(tmp_path):
    config = tmp_path / "newswatch.yaml"
    config.write_text("console:\n  port: 8790\n  colour: blue\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert "newswatch.yaml:3:3: console.colour: unknown key" in str(caught.value)
    config.write_text("console:\n  retention: 3d\n", encoding="utf-8")
    assert load_config(config).console.retention == 3 * 86400
    assert load_config(config).console.host == "127.0.0.1"


def test_pages_answer_json_like_their_api_twins(store):
    from fastapi.testclient import TestClient

    from console.app import ConsoleContext, create_app
    from console.tester import LiveWatchlists

    add(store, f.article("ar1", f.SEED_TITLE, f.SEED_TEXT, "ar"))
    client = TestClient(create_app(ConsoleContext(store=store, token=None, watchlists=LiveWatchlists(f.WATCHLISTS))))
    as_json = {"accept": "application/json"}
    for page, api in (("/stories?q=لافروف", "/api/stories?q=لافروف"), ("/stories/st-ar1", "/api/stories/st-ar1"),
                      ("/feeds", "/api/feeds")):
        assert client.get(page, headers=as_json).json() == client.get(api).json()
    assert client.get("/stories/st-none", headers=as_json).status_code == 404
    spec = client.get("/openapi.json").json()["paths"]
    assert {"/api/stories", "/api/stories/{story_id}", "/api/feeds", "/api/test", "/api/test/pack"} <= set(spec)


def test_times_on_the_pages_are_to_the_second_in_utc():
    from datetime import datetime, timedelta, timezone

    from console.render import when

    assert when("2026-12-03T21:36:05.123456+00:00") == "2026-12-03 21:36:05Z"
    assert when("2026-12-04T00:36:05.9+03:00") == "2026-12-03 21:36:05Z"
    assert when(datetime(2026, 12, 3, 21, 36, 5, 999, tzinfo=timezone(timedelta(hours=-5)))) == "2026-12-04 02:36:05Z"
    assert when(1_796_333_765_123) == datetime.fromtimestamp(1_796_333_765, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
    assert when(None) == when("") == "-"
    assert when("not a time") == "not a time"


def test_the_story_page_names_who_and_what_and_the_deal(store):
    from fastapi.testclient import TestClient

    from console.app import ConsoleContext, create_app
    from console.tester import LiveWatchlists

    add(store, f.article("ar1", f.SEED_TITLE, f.SEED_TEXT, "ar"))
    add(store, f.article("en1", "Russia delivers S-400 systems to India",
                         "Russia has delivered the last S-400 air defence regiment to India under the 2018 arms deal, "
                         "the Indian defence ministry said.", "en"))
    client = TestClient(create_app(ConsoleContext(store=store, token=None, watchlists=LiveWatchlists(f.WATCHLISTS))))
    seed = client.get("/stories/st-ar1").text
    for entity in ("country:EG", "country:RU", "system:S-300", "system:S-400", "person:sergey_lavrov"):
        assert f'data-entity="{entity}"' in seed
    assert "Sergey Lavrov <small>(foreign minister, RU)</small>" in seed
    assert 'class="parties"' not in seed  # no supply cue in the seed article: no deal named
    deal = client.get("/stories/st-en1").text
    assert 'data-supplier="RU" data-recipient="IN"' in deal and "Deal: RU supplies IN" in deal
