"""The news of the scale-out integration test: stories published several times with light edits
under different ids and links, spread over many feeds on several hosts, plus news that matches no
topic. Built from the processors' synthetic corpus (ar/en/ru texts written for the tests), so every
story raises a topic and no two stories are near-duplicates of each other."""

from __future__ import annotations

import random
from dataclasses import dataclass

from newswatch.schemas import Article, FeedRef
from tests.processors.corpus import labelled_articles

HOSTS = 6
FEEDS = 60
STORIES = 40
OTHERS = 200
DATELINES = {"ar": "(وكالات) - ", "en": "(Wire) - ", "ru": "(агентства) — "}


@dataclass(frozen=True)
class Corpus:
    articles: list[Article]  # in publication order
    copies: dict[int, frozenset[str]]  # story number -> the article ids of its publications

    def story_of(self, article_id: str) -> int | None:
        return next((story for story, ids in self.copies.items() if article_id in ids), None)


def feed_ref(number: int) -> tuple[FeedRef, str]:
    """Feed `number` of FEEDS, on host `number % HOSTS`: its reference and its outlet's name."""
    host = number % HOSTS
    return FeedRef(url=f"http://news{host}.example.test/feed{number}.xml", title=f"Feed {number}"), f"Outlet {number}"


def light_edit(article: Article, copy: int) -> tuple[str, str]:
    """Title and text of publication `copy` of a story: as written, or with one light edit."""
    title, text = article.title, article.text
    dateline = DATELINES[article.lang or "en"]
    sentences = text.split(". ")
    if copy == 1:
        return f"UPDATE 1-{title}", text
    if copy == 2:
        return title, dateline + text
    if copy == 3:
        return f"UPDATE 2-{title}", text
    if copy == 4 and len(sentences) > 3:
        return title, ". ".join(sentences[:-1])  # the last sentence (filler) cut
    if copy >= 4:
        return f"UPDATE {copy}-{title}", dateline + text
    return title, text


def build(seed: int = 12) -> Corpus:
    """STORIES stories published 3 to 6 times each, and OTHERS articles that raise no topic, shuffled."""
    pool = labelled_articles(2 * (STORIES + OTHERS) + 200, seed=seed, id_prefix="base")
    stories = [item.article for item in pool if item.topics][:STORIES]
    others = [item.article for item in pool if not item.topics][:OTHERS]
    assert len(stories) == STORIES and len(others) == OTHERS
    rng = random.Random(seed)
    articles: list[Article] = []
    copies: dict[int, frozenset[str]] = {}
    for story, base in enumerate(stories):
        ids = []
        for copy in range(3 + story % 4):
            feed, outlet = feed_ref(rng.randrange(FEEDS))
            title, text = light_edit(base, copy)
            article_id = f"story{story:02d}-copy{copy}"
            articles.append(base.model_copy(update={
                "id": article_id, "title": title, "text": text, "feed": feed, "source": outlet,
                "url": f"http://{feed.url.split('/')[2]}/articles/{story}-{copy}-{rng.randrange(10**6)}"}))
            ids.append(article_id)
        copies[story] = frozenset(ids)
    for number, base in enumerate(others):
        feed, outlet = feed_ref(rng.randrange(FEEDS))
        articles.append(base.model_copy(update={"id": f"other{number:03d}", "feed": feed, "source": outlet}))
    rng.shuffle(articles)
    return Corpus(articles, copies)
