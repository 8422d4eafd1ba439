"""Several `newswatch process` workers (separate processes) as one consumer group on the real
broker: detection spreads over the articles partitions, and copies of one story that arrive on
different partitions, detected by different workers, still get one story id."""

from __future__ import annotations

from collections import defaultdict

import pytest
from kafka import KafkaProducer

from newswatch.broker.local import free_port
from newswatch.kafka_settings import Topics
from newswatch.schemas import Match, decode
from tests.processors.corpus import labelled_articles
from tests.processors.factories import article
from tests.processors.test_worker_integration import SEED_WATCHLISTS, worker_factory  # noqa: F401 (fixture)
from tests.processors.worker_support import read_all, write_config
from tests.support.kafka import create_topics, group_lag, group_members
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

PARTITIONS = 3
WORKERS = 3
# Six unrelated stories (written for this test), each published three times with light edits.
STORIES = [
    ("en", "Greece orders four more Patriot air defence batteries",
     "Athens has signed a contract for four additional Patriot air defence batteries and missiles, the Greek "
     "defence ministry said on Wednesday, in a deal worth about two billion euros."),
    ("en", "Japanese and Australian ministers hold 2+2 talks in Canberra",
     "The foreign and defence ministers of Japan and Australia met in Canberra for 2+2 talks on Friday and agreed "
     "to expand joint exercises and share more intelligence."),
    ("ru", "Алжир получил первую партию зенитных комплексов С-400",
     "Алжир получил первую партию зенитных ракетных комплексов С-400, сообщили источники в министерстве "
     "обороны страны. Поставка стала частью контракта, подписанного два года назад."),
    ("ru", "Министр обороны Вьетнама прибыл в Москву с официальным визитом",
     "Министр обороны Вьетнама прибыл в Москву, где проведёт переговоры с российским коллегой о военном "
     "сотрудничестве и поставках вооружений."),
    ("ar", "المغرب يوقع صفقة لشراء منظومة باتريوت للدفاع الجوي",
     "وقعت المملكة المغربية صفقة مع الولايات المتحدة لشراء منظومة باتريوت للدفاع الجوي، بحسب ما أعلنته "
     "وزارة الدفاع الأمريكية يوم الخميس."),
    ("ar", "وزير الخارجية الهندي يصل إلى الرياض في زيارة رسمية",
     "وصل وزير الخارجية الهندي إلى الرياض في زيارة رسمية يبحث خلالها مع نظيره السعودي التعاون الدفاعي "
     "وصفقات السلاح."),
]


def copies(lang: str, title: str, text: str, story: int) -> list:
    """Three publications of one story: as written, with an update tag, and with a dateline."""
    edits = [(title, text), (f"UPDATE 1-{title}", text), (title, f"({'Wire'}) - {text}")]
    return [article(f"s{story}-copy{n}", t, body, lang=lang, source=f"Feed {n}",
                    feed=f"https://feed{n}.example.test/rss") for n, (t, body) in enumerate(edits)]


def test_three_workers_give_one_story_id_per_story_whichever_partition_and_worker(
        tmp_path, kafka_bootstrap, topic_prefix, worker_factory):  # noqa: F811
    topics = Topics(topic_prefix)
    create_topics(kafka_bootstrap, topics.articles, partitions=PARTITIONS)
    config = write_config(tmp_path, topic_prefix, SEED_WATCHLISTS)
    workers = [worker_factory(config, metrics_port=free_port()) for _ in range(WORKERS)]
    wait_until(lambda: all(w.proc.poll() is None for w in workers) and
               group_members(kafka_bootstrap, f"{topic_prefix}processor") == WORKERS, 120,
               "the three workers never formed one stable group")

    filler = [item.article for item in labelled_articles(300, id_prefix="fill", seed=21)]
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=10)
    story_of: dict[str, int] = {}
    for story, (lang, title, text) in enumerate(STORIES):
        for n, copy in enumerate(copies(lang, title, text, story)):
            # Copy n of every story goes to partition n: every story crosses all partitions.
            producer.send(topics.articles, key=copy.id.encode(), value=copy.encode(), partition=n % PARTITIONS)
            story_of[copy.id] = story
    for n, item in enumerate(filler):
        producer.send(topics.articles, key=item.id.encode(), value=item.encode(), partition=n % PARTITIONS)
    producer.flush()
    producer.close()

    expected = set(story_of) | {item.article.id for item in labelled_articles(300, id_prefix="fill", seed=21)
                                if item.topics}
    group = f"{topic_prefix}processor"

    def lag() -> int:
        return sum(group_lag(kafka_bootstrap, group, [topics.articles, topics.candidates]).values())
    try:
        # Every expected article matched, then nothing left unread by the group: a record count
        # would also be reached by copies a rebalance replayed.
        wait_until(lambda: expected <= {decode(r.value, Match).id for r in read_all(kafka_bootstrap, topics.matches)},
                   240, "every expected match")
        wait_until(lambda: lag() == 0, 120, "the group has read everything")
    except AssertionError as exc:
        missing = expected - {decode(r.value, Match).id for r in read_all(kafka_bootstrap, topics.matches)}
        def story_outcomes(worker) -> dict | str:
            try:
                return {labels: v for (name, labels), v in worker.metrics().items()
                        if name == "newswatch_processor_candidates_total"}
            except OSError as error:  # a dead worker's metrics must not hide the failure itself
                return f"no metrics: {error}"
        outcomes = [story_outcomes(w) for w in workers]
        logs = "\n".join(f"--- worker {n} (exit {w.proc.poll()}):\n{w.log()[-3000:]}" for n, w in enumerate(workers))
        raise AssertionError(f"{exc}; group lag {lag()}; never matched {sorted(missing)}; story stage outcomes "
                             f"per worker {outcomes}\n{logs}") from None
    records = read_all(kafka_bootstrap, topics.matches)
    ids_per_article: dict[str, set[str]] = defaultdict(set)
    for record in records:
        match = decode(record.value, Match)
        assert record.key == match.story_id.encode()
        ids_per_article[match.id].add(match.story_id)
    assert all(len(ids) == 1 for ids in ids_per_article.values()), "no article under two story ids"
    assert set(ids_per_article) == expected, "every expected article matched, and no other"
    ids_per_story: dict[int, set[str]] = defaultdict(set)
    for article_id, story in story_of.items():
        ids_per_story[story] |= ids_per_article[article_id]
    assert all(len(ids) == 1 for ids in ids_per_story.values()), f"one story id per story: {dict(ids_per_story)}"
    assert len({next(iter(ids)) for ids in ids_per_story.values()}) == len(STORIES), "unrelated stories stay apart"

    # Every worker detected something (the articles partitions were spread), one ran the story stage.
    def counted():
        totals = []
        for worker in workers:
            values = worker.metrics()
            totals.append((sum(v for (name, _), v in values.items() if name == "newswatch_processor_articles_total"),
                           sum(v for (name, _), v in values.items() if name == "newswatch_processor_candidates_total")))
        return totals if sum(a for a, _ in totals) == len(story_of) + len(filler) else None
    totals = wait_until(counted, 60, "the workers' counters add up to every article")
    assert sum(1 for articles, _ in totals if articles > 0) == WORKERS, totals
    assert sum(1 for _, candidates in totals if candidates > 0) == 1, totals
    assert {r.partition for r in read_all(kafka_bootstrap, topics.candidates)} == {0}
