from datetime import datetime, timezone

import pytest

from ingest.parse import (FeedRefused, TextCaps, cap, clean_text, html_to_text, normalise_lang, parse_feed,
                          refuse_entity_declarations, script_language)
from tests.ingest.feeds_fixture import AR, EN, RU, atom, entries, rss1, rss2

NOW = datetime(2026, 11, 29, 1, 0, tzinfo=timezone.utc)
FEED = "http://news.example.test/feed.xml"


@pytest.mark.parametrize("html, text", [
    ("<p>Hello &amp; <b>world</b></p><p>again</p>", "Hello & world\nagain"),
    ("Price &lt; 5 &#8212; &quot;cheap&quot; &nbsp;now", "Price < 5 — \"cheap\" now"),
    ("<script>alert(1)</script><style>p{}</style>visible", "visible"),
    ("line<br>break<br/>twice", "line\nbreak\ntwice"),
    ("<p>وزير   الدفاع</p>\n\n\n<p>زار موسكو</p>", "وزير الدفاع\nزار موسكو"),
    ("ctrl\x00chars\x07 and \x1b[31m escapes\x85", "ctrlchars and [31m escapes"),
    ("<p>unclosed <b>tags", "unclosed tags"),
    ("", ""),
    (None, ""),
])
def test_html_to_text(html, text):
    assert html_to_text(html) == text


@pytest.mark.parametrize("raw, cleaned", [
    ("a\r\nb\rc", "a\nb\nc"), ("  spaced\t\tout  ", "spaced out"), ("\u200fRTL mark kept", "\u200fRTL mark kept"),
    ("lone \ud800 surrogate", "lone surrogate"),
])
def test_clean_text(raw, cleaned):
    assert clean_text(raw) == cleaned


@pytest.mark.parametrize("text, limit, expected", [
    ("short", 10, "short"),
    ("one two three four five six", 25, "one two three four five"),
    ("abcdefghij", 5, "abcde"),  # no space near the end: a hard cut
])
def test_cap(text, limit, expected):
    assert cap(text, limit) == expected


@pytest.mark.parametrize("value, lang", [("en-US", "en"), ("AR", "ar"), ("ru_RU", "ru"), ("english", None),
                                         ("", None), (None, None), ("x", None), ("zh-Hant-TW", "zh")])
def test_normalise_lang(value, lang):
    assert normalise_lang(value) == lang


BILLION_LAUGHS = (b'<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY a "aaaaaaaaaa">\n'
                  b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">\n<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">\n]>\n'
                  b'<rss version="2.0"><channel><title>&c;</title></channel></rss>')


@pytest.mark.parametrize("doc", [
    BILLION_LAUGHS,
    BILLION_LAUGHS.replace(b"<!ENTITY", b"<!entity"),
    b"<!-- <rss> in a comment --><!DOCTYPE rss [<!ENTITY a 'x'>]><rss/>",
    b"\xef\xbb\xbf<?xml version='1.0'?><!DOCTYPE rss [<!ENTITY % p SYSTEM 'http://x/'> %p;]><rss/>",
    BILLION_LAUGHS.decode().encode("utf-16"),        # BOM + UTF-16 cannot hide it
    BILLION_LAUGHS.decode().encode("utf-16-le"),     # nor UTF-16 without a BOM
    b"junk before <!ENTITY x 'y'> <rss/>",           # not XML-shaped: any declaration refused
])
def test_entity_declarations_are_refused(doc):
    with pytest.raises(FeedRefused) as caught:
        refuse_entity_declarations(doc)
    assert caught.value.reason == "entity_declaration"
    with pytest.raises(FeedRefused):
        parse_feed(doc, FEED, fetched_at=NOW)


@pytest.mark.parametrize("doc", [
    b'<?xml version="1.0"?><!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN" '
    b'"http://my.netscape.com/publish/formats/rss-0.91.dtd"><rss version="0.91"/>',
    b"<rss><channel><item><description><![CDATA[how <!ENTITY works]]></description></item></channel></rss>",
    b"<?xml version='1.0'?><!-- note --><?xml-stylesheet href='x'?>\n<feed/>",
])
def test_ordinary_prologs_pass(doc):
    refuse_entity_declarations(doc)


def test_rss2_entries_become_articles():
    items = entries(EN, "http://news.example.test/en", "en-")
    parsed = parse_feed(rss2("English desk", "en-gb", items, ttl_minutes=15), FEED, fetched_at=NOW,
                        feed_name="Example EN", tags=("wire",))
    assert parsed.version == "rss20" and parsed.ttl_s == 900 and parsed.title == "English desk"
    first = parsed.articles[0]
    assert first.id == "guid:news.example.test:en-0"
    assert first.title == EN[0][0]
    assert first.text == ("The foreign and defence ministers of Egypt and Russia met in Cairo for a 2+2 round.\n"
                          "Air defence & wheat deliveries were on the agenda.")
    assert first.lang == "en" and first.source == "Example EN" and first.tags == ("wire",)
    assert first.published_at == datetime(2026, 11, 28, 9, 0, tzinfo=timezone.utc)
    assert first.fetched_at == NOW and first.feed.url == FEED and first.feed.title == "English desk"
    assert [a.id for a in parsed.articles] == [f"guid:news.example.test:en-{i}" for i in range(3)]


def test_atom_entries_take_xml_lang_and_authors():
    items = entries(RU, "http://ru.example.test/n", "tag:ru.example.test,2026:")
    parsed = parse_feed(atom("Новости", "ru", items), "http://ru.example.test/atom", fetched_at=NOW)
    article = parsed.articles[1]
    assert parsed.version == "atom10"
    assert (article.id, article.lang, article.authors) == ("tag:ru.example.test,2026:1", "ru", ("Desk",))
    assert article.text == "Глава МИД прибыл в Каир для переговоров в формате «2+2»."
    assert article.source == "Новости"


def test_rss1_entries_without_guid_get_their_link_as_id():
    items = entries(AR, "http://ar.example.test/news", None)
    parsed = parse_feed(rss1("أخبار", "ar", items), "http://ar.example.test/rdf", fetched_at=NOW)
    assert parsed.version == "rss10"
    assert [a.id for a in parsed.articles] == [f"http://ar.example.test/news/{i}" for i in range(3)]
    assert {a.lang for a in parsed.articles} == {"ar"}
    assert parsed.articles[1].title == AR[1][0]
    assert parsed.articles[2].text == "يبحث الوزير خلال الزيارة صفقات السلاح & التدريب المشترك."


def test_language_order_entry_then_feed_then_hint():
    doc = (b'<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel><title>x</title>'
           b'<item><title>a</title><link>http://x.test/a</link><dc:language>ru</dc:language></item>'
           b'<item><title>b</title><link>http://x.test/b</link></item></channel></rss>')
    parsed = parse_feed(doc, FEED, fetched_at=NOW, lang_hint="ar")
    assert [a.lang for a in parsed.articles] == ["ru", "ar"]
    assert parse_feed(doc, FEED, fetched_at=NOW).articles[1].lang is None


@pytest.mark.parametrize("sample, declared, lang", [
    # A feed-wide "en" over a Russian or Arabic story gives way to the story's script.
    ("Министры обороны России и Египта обсудили поставки С-400 в Каире", "en", "ru"),
    ("وزيرا الخارجية والدفاع يبحثان صفقة منظومات الدفاع الجوي في القاهرة", "en", "ar"),
    # Latin text in an Arabic feed: identified from its words (ingest.langid).
    ("The defence ministers discussed air defence deliveries in Cairo", "ar", "en"),
    # Another language of the same script as the text's is identified too, never confused.
    ("Міністри оборони України та Польщі обговорили постачання систем ППО", "en", "uk"),
    ("وزیران دفاع دو کشور درباره خرید سامانه‌های پدافند هوایی گفتگو کردند", "en", "fa"),
    # Agreeing scripts, Latin codes in a Russian text, a short quote: the declaration stands.
    ("Поставки S-400 и Patriot обсуждались на встрече министров обороны", "ru", "ru"),
    ("The minister quoted the Russian phrase «переговоры» twice at the press conference", "en", "en"),
    ("Премьер", "en", "en"),  # too few letters to overrule anything
    ("Министры обороны России и Египта обсудили поставки", "ja", "ja"),  # script unknown for ja
    ("مسؤولون إيرانيون يزورون موسكو لبحث صفقات الطائرات", "fa", "fa"),  # Persian: Arabic script too
    ("Министар спољних послова Србије допутовао је у Москву на разговоре", "sr", "sr"),  # two scripts
    ("Tashqi ishlar vaziri Moskvaga tashrif buyurdi va muzokaralar olib bordi", "uz", "uz"),
])
def test_a_declared_language_gives_way_only_to_a_clearly_different_script(sample, declared, lang):
    assert script_language(sample, declared) == lang


def test_a_wire_feed_declared_english_keeps_its_russian_story_russian():
    items = entries(RU, "http://ru.example.test/n", "wr")[:2] + entries(EN, "http://news.example.test/en", "we")[:1]
    parsed = parse_feed(rss2("Wire", "en", items), FEED, fetched_at=NOW)
    assert [a.lang for a in parsed.articles] == ["ru", "ru", "en"]
    # The entry's own declaration is never second-guessed.
    doc = (b'<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel><title>x</title>'
           b'<language>ru</language><item><title>The ministers of defence of Russia and Egypt met in Cairo</title>'
           b'<link>http://x.test/a</link><dc:language>en</dc:language></item></channel></rss>')
    assert parse_feed(doc, FEED, fetched_at=NOW).articles[0].lang == "en"


def test_an_atom_feeds_xml_lang_is_inherited_and_still_gives_way_to_the_script():
    # feedparser copies the feed's xml:lang into every entry; an entry's own different xml:lang wins.
    doc = ('<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="en"><title>Wire</title><id>tag:w</id>'
           '<entry><title>Министры обороны России и Египта обсудили поставки С-400 в Каире</title>'
           '<id>tag:w:1</id><link href="http://w.test/1"/></entry>'
           '<entry xml:lang="ru"><title>Ministers met in Cairo for talks on deliveries</title>'
           '<id>tag:w:2</id><link href="http://w.test/2"/></entry>'
           '<entry><title>Ministers met in Cairo for talks on deliveries of air defence</title>'
           '<id>tag:w:3</id><link href="http://w.test/3"/></entry></feed>').encode()
    assert [a.lang for a in parse_feed(doc, FEED, fetched_at=NOW).articles] == ["ru", "ru", "en"]


def test_caps_and_shared_links():
    long_title = "S-400 " * 400
    doc = ('<rss version="2.0"><channel><title>x</title>'
           f'<item><title>{long_title}</title><link>http://x.test/</link><guid isPermaLink="false">g1</guid>'
           f'<description>{"word " * 10000}</description></item>'
           '<item><title>b</title><link>http://x.test/</link><guid isPermaLink="false">g2</guid></item>'
           '<item><title>b</title><link>http://x.test/</link><guid isPermaLink="false">g2</guid></item>'
           '</channel></rss>').encode()
    parsed = parse_feed(doc, FEED, fetched_at=NOW, caps=TextCaps(title=1000, text=20000, summary=2000))
    first = parsed.articles[0]
    assert len(first.title) <= 1000 and first.title.startswith("S-400 S-400")
    assert len(first.text) <= 20000 and len(first.summary) <= 2000
    assert len(parsed.entries) == 2  # the repeated guid inside one document is one article
    # both items point at the home page, so the link is not a dedupe key for either
    assert [entry.keys for entry in parsed.entries] == [("guid:news.example.test:g1",),
                                                        ("guid:news.example.test:g2",)]


def test_plain_text_title_keeps_angle_brackets():
    doc = (b'<rss version="2.0"><channel><title>x</title><item><title>Deal for &lt;S-400&gt; systems</title>'
           b'<link>http://x.test/1</link></item></channel></rss>')
    assert parse_feed(doc, FEED, fetched_at=NOW).articles[0].title == "Deal for <S-400> systems"


@pytest.mark.parametrize("escaped, title", [
    ("&lt;script&gt;alert('x')&lt;/script&gt;Deal for S-400 systems", "Deal for S-400 systems"),
    ("&lt;b&gt;Egypt&lt;/b&gt; and &lt;a href=\"/r\"&gt;Russia&lt;/a&gt; hold 2+2 talks", "Egypt and Russia hold 2+2 talks"),
    ("Deal for &lt;S-400&gt; systems &lt;!-- tracking --&gt;", "Deal for <S-400> systems"),
    ("&lt;img src=x onerror=alert(1)&gt;Тор-М2 &amp; «Бук»", "Тор-М2 & «Бук»"),
])
def test_a_title_carrying_escaped_markup_keeps_only_its_words(escaped, title):
    doc = (f'<rss version="2.0"><channel><title>x</title><item><title>{escaped}</title>'
           f'<link>http://x.test/1</link></item></channel></rss>').encode()
    assert parse_feed(doc, FEED, fetched_at=NOW).articles[0].title == title


@pytest.mark.parametrize("doc, reason", [
    (b"<html><head><title>Not found</title></head><body>gone</body></html>", "not_a_feed"),
    (b"just some text", "not_a_feed"),
    (b"", "not_a_feed"),
])
def test_non_feeds_are_refused_with_a_reason(doc, reason):
    with pytest.raises(FeedRefused) as caught:
        parse_feed(doc, FEED, fetched_at=NOW)
    assert caught.value.reason == reason


def test_articles_encode_as_article_v1_json():
    from newswatch.schemas import Article, decode
    parsed = parse_feed(rss2("x", "ar", entries(AR, "http://a.test/n", "a")), FEED, fetched_at=NOW)
    for article in parsed.articles:
        raw = article.encode()
        assert "صفقة".encode() in raw or "وزير".encode() in raw or "مصر".encode() in raw  # not \u-escaped
        assert decode(raw, Article) == article
