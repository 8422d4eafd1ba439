"""Fixtures for the ingest tests: a real local feed server and a poller wired to a state folder."""

from __future__ import annotations

import pytest

from ingest.feeds_config import FeedConfig
from ingest.metrics import IngestMetrics
from ingest.parse_pool import InlineParser
from ingest.poller import Poller, build_client
from ingest.seen import IngestStore
from ingest.settings import IngestSettings
from tests.ingest.feed_server import FeedServer


@pytest.fixture
def feed_server():
    with FeedServer() as server:
        yield server


def local_settings(**overrides) -> IngestSettings:
    """Settings for tests: local addresses allowed, short intervals."""
    values = dict(allow_private_networks=True, interval_floor_s=1, interval_ceiling_s=3600, concurrency=8,
                  per_host=4, fetch_deadline_s=10)
    values.update(overrides)
    return IngestSettings(**values)


def make_poller(feeds: list[FeedConfig], store: IngestStore, settings: IngestSettings, *, client=None,
                parser=None, metrics=None, **kwargs) -> Poller:
    return Poller(feeds, client=client or build_client(settings), store=store, parser=parser or InlineParser(),
                  metrics=metrics or IngestMetrics(), settings=settings, **kwargs)
