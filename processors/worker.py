"""Assembles one processor worker (topics, tables, both stages and their agents, reloads, metrics)
on a faust App and runs it until SIGTERM or SIGINT. The detector and watchlist loader are passed in.
Several workers with the same topic prefix form one consumer group: detection spreads over the
articles partitions, and the story stage runs in whichever worker owns the candidates partition.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust
from prometheus_client import CollectorRegistry, start_http_server

from newswatch.config import AppConfig
from newswatch.errors import ConfigError
from newswatch.logs import log_event, setup_logging
from newswatch.topic_setup import TopicSpec, ensure_topics
from processors.agents import (in_the_loop, owned_partitions, register_detection_agent, register_story_agent,
                               register_watchlist_reloads)
from processors.app import create_app
from processors.detect_pool import DetectionProcess
from processors.metrics import ProcessorMetrics
from processors.pipeline import DetectionStage, Detector
from processors.reload import WatchlistReloader
from processors.stories import Sketcher, StoryIndex
from processors.story_stage import StoryStage
from processors.tables import TableState, declare_tables
from processors.topics import declare_topics

log = logging.getLogger("newswatch.processors")


def _ms(delta) -> int:
    return int(delta.total_seconds() * 1000)


def watchlist_folder(config: AppConfig) -> Path:
    folder = config.resolve(config.watchlists)
    if folder is None:
        raise ConfigError.single(str(config.base_dir / "newswatch.yaml"), "not set; the processor needs "
                                 "a folder of topic packs", key="watchlists")
    return folder


# The story stage sees every matched article of the stream, so its topic has one partition
# (docs/processors.md gives its measured ceiling).
CANDIDATE_PARTITIONS = 1


def ensure_processor_topics(config: AppConfig) -> dict[str, int]:
    """Create the topics the worker reads and writes when missing (any stage may start first);
    return each one's partition count, as it is on the broker."""
    names = config.kafka.topics
    return ensure_topics(config.kafka.bootstrap(), [TopicSpec(names.articles, names.partitions),
                                                    TopicSpec(names.candidates, CANDIDATE_PARTITIONS),
                                                    TopicSpec(names.matches, names.partitions),
                                                    TopicSpec(names.articles_dlq, 1)],
                         client_id="newswatch-processor-setup")


@dataclass
class ProcessorWorker:
    """The pieces of one worker, kept together so tests and the CLI can reach them."""

    app: faust.App
    detection: DetectionStage
    story_stage: StoryStage
    reloader: WatchlistReloader
    metrics: ProcessorMetrics
    partitions: int  # of the articles topic


def build_processor(config: AppConfig, *, detect: Detector, load_watchlists: Callable[[Path], Any],
                    registry: CollectorRegistry) -> ProcessorWorker:
    """Load the watchlists (ConfigError if they are bad), make sure the topics exist and wire the App."""
    settings = config.process
    reloader = WatchlistReloader(watchlist_folder(config), load_watchlists)
    names = config.kafka.topics
    counts = ensure_processor_topics(config)
    app = create_app(config, partitions=counts[names.articles])
    topics = declare_topics(app, names)
    tables = declare_tables(app, counts[names.candidates])
    sketcher = Sketcher()
    detection = DetectionStage(detect=detect, current_watchlist=lambda: reloader.current, sketcher=sketcher)
    stories = StoryIndex(sketcher, similarity=settings.story_similarity, window_ms=_ms(settings.story_window),
                         max_sources=settings.max_sources)
    story_stage = StoryStage(stories=stories, processed=TableState(tables.processed),
                             story_state=TableState(tables.stories), dedup_retention_ms=_ms(settings.dedup_retention),
                             purge_every_ms=min(60_000, _ms(settings.dedup_retention) // 2,
                                                _ms(settings.story_window) // 2),
                             owns=owned_partitions(app, names.candidates))
    metrics = ProcessorMetrics(registry)
    batching = {"batch_size": settings.batch_size, "batch_within": settings.batch_within.total_seconds()}
    if settings.detection_process:
        child = DetectionProcess(detect=detect, current_watchlist=lambda: reloader.current,
                                 processes=settings.detection_processes)
        app.on_before_shutdown.connect(lambda sender, **kwargs: child.close())
        detect_batch = child.parts
    else:
        detect_batch = in_the_loop(detection)
    register_detection_agent(app, topics, detect_batch, metrics, **batching)
    register_story_agent(app, topics, story_stage, metrics, **batching)
    register_watchlist_reloads(app, reloader, metrics, interval=settings.reload_interval.total_seconds())
    return ProcessorWorker(app, detection, story_stage, reloader, metrics, counts[names.articles])


def _exit_after_grace(signal_name: str, grace: float) -> None:
    log_event(log, logging.WARNING, "processor_stop_forced", signal=signal_name, stop_timeout_s=grace,
              reason="shutdown did not finish in time (is the broker reachable?); uncommitted articles "
                     "will be processed again")
    logging.shutdown()
    os._exit(0)


class NewswatchWorker(faust.Worker):
    """faust's Worker with newswatch's one-line key=value logs and a shutdown bounded by
    `stop_timeout`: faust's own can hang retrying a commit when the broker is gone. Exiting then
    loses nothing: what was not committed is processed again, identically, by the next worker."""

    def __init__(self, *args: Any, stop_timeout: float = 20.0, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.stop_timeout = stop_timeout

    def _schedule_shutdown(self, signal: signal.Signals) -> None:
        if not self._signal_stop_time:
            watchdog = threading.Timer(self.stop_timeout, _exit_after_grace,
                                       args=(signal.name, self.stop_timeout))
            watchdog.daemon = True
            watchdog.start()
        super()._schedule_shutdown(signal)

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        self.spinner = None  # its terminal escapes would garble the log lines
        setup_logging(level)
        for chatty in ("faust", "mode", "aiokafka", "kafka"):
            logging.getLogger(chatty).setLevel(logging.WARNING)


def run_worker(config: AppConfig, *, metrics_port: int, detect: Detector,
               load_watchlists: Callable[[Path], Any]) -> None:
    """Run the processor until SIGTERM/SIGINT, then return (faust stops cleanly and commits)."""
    registry = CollectorRegistry()
    worker_parts = build_processor(config, detect=detect, load_watchlists=load_watchlists, registry=registry)
    if metrics_port:
        start_http_server(metrics_port, registry=registry)
    log_event(log, logging.INFO, "processor_starting", app_id=worker_parts.app.conf.id,
              bootstrap=config.kafka.bootstrap(), articles_topic=config.kafka.topics.articles,
              partitions=worker_parts.partitions, watchlists=str(worker_parts.reloader.folder),
              watchlist_version=worker_parts.reloader.current.version, metrics_port=metrics_port or "off")
    worker = NewswatchWorker(worker_parts.app, loglevel="INFO", quiet=True, redirect_stdouts=False,
                             stop_timeout=config.process.stop_timeout.total_seconds())
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
    log_event(log, logging.INFO, "processor_stopped", app_id=worker_parts.app.conf.id)
