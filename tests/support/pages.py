"""Article pages as a news site serves them: the story wrapped in the site's boilerplate.

`render_page(article, layout)` puts the title and paragraphs of an article (tests/data/pages/
articles.yaml, or any dict with lang/title/paragraphs) inside one of three site layouts, each
with a menu, a "related" block, share buttons, a comments section, a cookie banner and a
footer, written in the article's language and full of watchlist terms (S-400, Patriot, arms
deals, ministers' visits). Extraction must keep the story and none of the rest.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from ruamel.yaml import YAML

ARTICLES_FILE = Path(__file__).resolve().parents[1] / "data" / "pages" / "articles.yaml"
LAYOUTS = ("agency", "portal", "blog")

BOILERPLATE = {
    "en": {
        "site": "Northern Courier",
        "menu": ["Home", "World", "Defence", "Arms deals", "Air defence", "Diplomacy", "Sport", "Weather"],
        "related_title": "Related stories",
        "related": ["Russia and India sign S-400 deal worth $5 billion",
                    "Patriot batteries to be sold to Saudi Arabia in arms deal",
                    "Foreign ministers of Egypt and Russia meet in Cairo for 2+2 talks",
                    "THAAD interceptors delivered to the Gulf"],
        "share": ["Share on Facebook", "Share on X", "Email this story", "Print"],
        "comments_title": "Comments (3)",
        "comments": ["Our country should buy the S-400 instead of the Patriot, cheaper and better.",
                     "The defence minister visited Moscow last week and nobody reported it!",
                     "Great article, thanks."],
        "cookie": "We use cookies to improve your experience. Accept all cookies",
        "footer": "© 2026 Northern Courier. All rights reserved. Contact us · Privacy policy · Terms",
        "byline": "By",
        "author": "Helen Marsh",
        "subscribe": "Subscribe to our newsletter on arms deals and air-defence systems",
    },
    "ru": {
        "site": "Вести Севера",
        "menu": ["Главная", "В мире", "Оборона", "ВТС и оружие", "ПВО", "Политика", "Спорт", "Погода"],
        "related_title": "Читайте также",
        "related": ["Россия и Индия подписали контракт на поставку С-400",
                    "Турция получит второй полк зенитных систем С-400",
                    "Лавров и Шойгу встретились с египетскими коллегами в формате «2+2»",
                    "Министр обороны Китая прибыл в Москву с визитом"],
        "share": ["Поделиться ВКонтакте", "Отправить в Telegram", "Одноклассники", "Распечатать"],
        "comments_title": "Комментарии (3)",
        "comments": ["Лучше бы С-400 поставили нам, а не продавали за границу.",
                     "Опять министр иностранных дел куда-то прилетел с визитом, а толку нет.",
                     "Спасибо за статью!"],
        "cookie": "Мы используем файлы cookie. Продолжая пользоваться сайтом, вы соглашаетесь с этим. Принять",
        "footer": "© 2026 Вести Севера. Все права защищены. Редакция · Реклама · Политика конфиденциальности",
        "byline": "Автор:",
        "author": "Иван Петров",
        "subscribe": "Подпишитесь на рассылку о поставках вооружений и системах ПВО",
    },
    "ar": {
        "site": "أخبار الشرق",
        "menu": ["الرئيسية", "العالم", "دفاع", "صفقات أسلحة", "الدفاع الجوي", "سياسة", "رياضة", "طقس"],
        "related_title": "أخبار ذات صلة",
        "related": ["روسيا والهند توقعان صفقة منظومة اس-400",
                    "السعودية تشتري بطاريات باتريوت في صفقة عسكرية جديدة",
                    "لافروف وشويغو يستقبلان نظيريهما المصريين بصيغة 2+2",
                    "وزير الدفاع الصيني يصل إلى موسكو في زيارة رسمية"],
        "share": ["شارك على فيسبوك", "شارك على تويتر", "أرسل بالبريد", "طباعة"],
        "comments_title": "التعليقات (3)",
        "comments": ["يجب أن نشتري منظومة اس-400 بدلا من باتريوت.",
                     "زار وزير الدفاع موسكو الأسبوع الماضي ولم يتحدث أحد عن ذلك.",
                     "شكرا على المقال."],
        "cookie": "نستخدم ملفات تعريف الارتباط لتحسين تجربتك. موافق",
        "footer": "© 2026 أخبار الشرق. جميع الحقوق محفوظة. اتصل بنا · سياسة الخصوصية",
        "byline": "بقلم",
        "author": "سارة الحسن",
        "subscribe": "اشترك في نشرتنا عن صفقات الأسلحة وأنظمة الدفاع الجوي",
    },
}


def load_articles() -> list[dict]:
    return YAML(typ="safe").load(ARTICLES_FILE.read_text(encoding="utf-8"))["articles"]


def _links(items: list[str], css: str = "") -> str:
    return "".join(f'<li{css}><a href="/story/{index}">{escape(item)}</a></li>' for index, item in enumerate(items))


def render_page(article: dict, layout: str = "agency", published: str = "2026-11-28T09:30:00+00:00") -> str:
    """The article's page: its story inside a site's boilerplate, as UTF-8 HTML text."""
    b = BOILERPLATE[article["lang"]]
    direction = ' dir="rtl"' if article["lang"] == "ar" else ""
    title = escape(article["title"])
    body = "".join(f"<p>{escape(p)}</p>" for p in article["paragraphs"])
    head = (f'<head><meta charset="utf-8"><title>{title} | {escape(b["site"])}</title>'
            f'<meta name="author" content="{escape(b["author"])}">'
            f'<meta property="article:published_time" content="{published}">'
            f'<meta property="og:title" content="{title}">'
            '<script>window.dataLayer=[];function track(){return "S-400 Patriot arms deal";}</script>'
            '<style>.menu li{display:inline}</style></head>')
    menu = f'<ul class="menu">{_links(b["menu"])}</ul>'
    share = "".join(f'<a class="share" href="#">{escape(s)}</a> ' for s in b["share"])
    comments = "".join(f'<div class="comment"><span class="user">reader{i}</span><p>{escape(c)}</p></div>'
                       for i, c in enumerate(b["comments"]))
    cookie = f'<div id="cookie-banner" class="cookie-consent"><p>{escape(b["cookie"])}</p><button>OK</button></div>'
    related = f'<h3>{escape(b["related_title"])}</h3><ul>{_links(b["related"])}</ul>'
    byline = f'<p class="byline">{escape(b["byline"])} <span class="author">{escape(b["author"])}</span></p>'
    if layout == "agency":
        page = (f'<body>{cookie}<header><div class="logo">{escape(b["site"])}</div><nav>{menu}</nav></header>'
                f'<main><article><h1>{title}</h1>{byline}<time datetime="{published}">{published[:10]}</time>'
                f'<div class="article-body">{body}</div><div class="share-buttons">{share}</div></article>'
                f'<aside class="related">{related}</aside>'
                f'<section class="comments"><h3>{escape(b["comments_title"])}</h3>{comments}</section></main>'
                f'<footer><p>{escape(b["subscribe"])}</p><p>{escape(b["footer"])}</p></footer></body>')
    elif layout == "portal":  # div soup, no semantic elements, the story among teasers
        teasers = "".join(f'<div class="teaser"><a href="/t/{i}">{escape(item)}</a></div>'
                          for i, item in enumerate(b["related"]))
        page = (f'<body><div id="top"><div class="nav-bar">{menu}</div></div>'
                f'<div class="wrap"><div class="col-left">{teasers}</div>'
                f'<div class="col-main"><div class="headline"><h1>{title}</h1></div>'
                f'<div class="meta">{byline}<span class="date">{published[:10]}</span></div>'
                f'<div class="story-text">{body}</div>'
                f'<div class="social">{share}</div>'
                f'<div class="more-news">{related}</div>'
                f'<div id="disqus_thread"><h4>{escape(b["comments_title"])}</h4>{comments}</div></div></div>'
                f'<div class="bottom">{escape(b["footer"])}</div>{cookie}</body>')
    elif layout == "blog":  # the story in an entry-content div, a widget sidebar, comments below
        widgets = (f'<div class="widget"><h4>{escape(b["related_title"])}</h4><ul>{_links(b["related"])}</ul></div>'
                   f'<div class="widget newsletter"><p>{escape(b["subscribe"])}</p></div>')
        page = (f'<body class="single-post"><div class="site-header"><span>{escape(b["site"])}</span>'
                f'<nav class="main-navigation">{menu}</nav></div>'
                f'<div id="content"><div class="post"><h1 class="entry-title">{title}</h1>'
                f'<div class="entry-meta">{byline}</div><div class="entry-content">{body}</div>'
                f'<div class="sharedaddy">{share}</div></div>'
                f'<div id="sidebar">{widgets}</div>'
                f'<div id="comments" class="comments-area"><h3>{escape(b["comments_title"])}</h3>'
                f'<ol class="comment-list">{"".join(f"<li>{c}</li>" for c in [comments])}</ol></div></div>'
                f'<div class="site-footer">{escape(b["footer"])}</div>{cookie}</body>')
    else:
        raise ValueError(f"unknown layout {layout!r}")
    return f'<!DOCTYPE html><html lang="{article["lang"]}"{direction}>{head}{page}</html>'


def pages() -> list[tuple[dict, str, str]]:
    """Every article of the set in the layout its position gives it: (article, layout, html)."""
    return [(article, LAYOUTS[index % len(LAYOUTS)], render_page(article, LAYOUTS[index % len(LAYOUTS)]))
            for index, article in enumerate(load_articles())]
