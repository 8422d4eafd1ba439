"""Feed documents for the ingest tests: RSS 2.0, Atom 1.0 and RSS 1.0 (RDF) built from entries,
with news texts in Arabic, English and Russian written for these tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from xml.sax.saxutils import escape

BASE_TIME = datetime(2026, 11, 28, 9, 0, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Entry:
    guid: str | None
    link: str
    title: str
    html: str
    published: datetime


EN = [
    ("Egypt and Russia hold 2+2 talks in Cairo",
     "<p>The foreign and defence ministers of Egypt and Russia met in Cairo for a <b>2+2</b> round.</p>"
     "<p>Air defence &amp; wheat deliveries were on the agenda.</p>"),
    ("Patriot batteries to arrive before winter",
     "<p>Officials said two Patriot batteries would be delivered &quot;before the first snow&quot;.</p>"),
    ("Parliament questions S-400 purchase",
     "<p>Lawmakers asked the government to publish the terms of the S-400 contract.</p>"),
]
RU = [
    ("Министры обороны обсудили поставки С-400",
     "<p>Министры обороны двух стран обсудили сроки поставок комплексов С-400.</p>"),
    ("Визит министра иностранных дел в Каир",
     "<p>Глава МИД прибыл в Каир для переговоров в формате «2+2».</p>"),
    ("Новый контракт на зенитные ракеты",
     "<p>Стороны подписали контракт на поставку зенитных ракет &amp; запасных частей.</p>"),
]
AR = [
    ("مصر وروسيا تعقدان محادثات 2+2 في القاهرة",
     "<p>التقى وزيرا الخارجية والدفاع في البلدين لبحث التعاون العسكري.</p>"),
    ("صفقة منظومات دفاع جوي جديدة",
     "<p>أعلنت الوزارة توقيع صفقة لشراء منظومات دفاع جوي من طراز إس-400.</p>"),
    ("وزير الدفاع يزور موسكو الأسبوع المقبل",
     "<p>يبحث الوزير خلال الزيارة صفقات السلاح &amp; التدريب المشترك.</p>"),
]


def entries(texts, base_link: str, guid_prefix: str | None, start: int = 0) -> list[Entry]:
    out = []
    for index, (title, html) in enumerate(texts, start=start):
        link = f"{base_link}/{index}"
        guid = f"{guid_prefix}{index}" if guid_prefix else None
        out.append(Entry(guid, link, title, html, BASE_TIME + timedelta(minutes=index)))
    return out


def rss2(title: str, lang: str, items: list[Entry], ttl_minutes: int | None = None) -> bytes:
    parts = [f'<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>'
             f"<title>{escape(title)}</title><link>http://example.test/</link><language>{lang}</language>"]
    if ttl_minutes is not None:
        parts.append(f"<ttl>{ttl_minutes}</ttl>")
    for item in items:
        parts.append("<item>")
        parts.append(f"<title>{escape(item.title)}</title><link>{escape(item.link)}</link>")
        if item.guid:
            parts.append(f'<guid isPermaLink="false">{escape(item.guid)}</guid>')
        parts.append(f"<description>{escape(item.html)}</description>")
        parts.append(f"<pubDate>{item.published.strftime('%a, %d %b %Y %H:%M:%S +0000')}</pubDate>")
        parts.append("</item>")
    parts.append("</channel></rss>")
    return "".join(parts).encode("utf-8")


def atom(title: str, lang: str, items: list[Entry]) -> bytes:
    parts = [f'<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="{lang}">'
             f"<title>{escape(title)}</title><id>urn:test:{lang}</id><updated>2026-11-28T09:00:00Z</updated>"]
    for item in items:
        stamp = item.published.strftime("%Y-%m-%dT%H:%M:%SZ")
        parts.append(f"<entry><id>{escape(item.guid or item.link)}</id><title>{escape(item.title)}</title>"
                     f'<link href="{escape(item.link)}"/><updated>{stamp}</updated><published>{stamp}</published>'
                     f'<author><name>Desk</name></author><content type="html">{escape(item.html)}</content></entry>')
    parts.append("</feed>")
    return "".join(parts).encode("utf-8")


def rss1(title: str, lang: str, items: list[Entry]) -> bytes:
    parts = ['<?xml version="1.0" encoding="utf-8"?>\n'
             '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/" '
             'xmlns:dc="http://purl.org/dc/elements/1.1/">'
             f'<channel rdf:about="http://example.test/rdf"><title>{escape(title)}</title>'
             f"<link>http://example.test/</link><description>test</description><dc:language>{lang}</dc:language>"
             "<items><rdf:Seq>"]
    parts.extend(f'<rdf:li rdf:resource="{escape(item.link)}"/>' for item in items)
    parts.append("</rdf:Seq></items></channel>")
    for item in items:
        parts.append(f'<item rdf:about="{escape(item.link)}"><title>{escape(item.title)}</title>'
                     f"<link>{escape(item.link)}</link><description>{escape(item.html)}</description>"
                     f"<dc:date>{item.published.strftime('%Y-%m-%dT%H:%M:%SZ')}</dc:date></item>")
    parts.append("</rdf:RDF>")
    return "".join(parts).encode("utf-8")
