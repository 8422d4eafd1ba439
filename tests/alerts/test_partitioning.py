"""Where a subscription's routed matches and state live: a pure function of its name and the partition
count, equal to Kafka's default partitioner for the name as key (so any client agrees)."""

from aiokafka.partitioner import DefaultPartitioner

from alerts.records import Route, RoutedMatch, subscription_partition
from newswatch.schemas import decode
from tests.alerts.factories import ARABIC_TITLE, hit, match


def test_the_partition_is_kafkas_default_partitioner_for_the_name():
    partitioner = DefaultPartitioner()
    for count in (1, 2, 3, 7, 32):
        partitions = list(range(count))
        for name in ("local-sink", "arabic-desk", "n8n", "desk-0", "desk-1", "Ünïcode-desk"):
            assert subscription_partition(name, count) == partitioner(name.encode(), partitions, partitions)


def test_the_partition_is_stable_and_in_range():
    assert subscription_partition("local-sink", 3) == subscription_partition("local-sink", 3)
    assert {subscription_partition(f"desk-{i}", 3) for i in range(30)} == {0, 1, 2}
    assert {subscription_partition(f"desk-{i}", 1) for i in range(30)} == {0}


def test_a_routed_match_round_trips_with_its_topics():
    routed = RoutedMatch(match=match(title=ARABIC_TITLE, lang="ar"),
                         routes=(Route(subscription="desk", topics=(hit("s400"),)),
                                 Route(subscription="desk-2", topics=(hit("s400"), hit("patriot")))))
    raw = routed.encode()
    assert ARABIC_TITLE.encode() in raw  # UTF-8, not escaped
    again = decode(raw, RoutedMatch)
    assert again == routed and again.schema_ == "newswatch.alert_routed/v1"
