"""The thin orchestrator behind `newswatch up`: broker, demo feeds, supervised stages, live view.

Start order: the broker (unless one is configured), the demo feed server, the sink, then
ingest, process and alerts. Stop order on SIGINT/SIGTERM/SIGHUP: the children (SIGTERM to each
process group, SIGKILL after a deadline), the demo server, then the broker if we started it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import io
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import httpx
from ruamel.yaml import YAML

from newswatch.broker import local
from newswatch.config import AppConfig, load_config
from newswatch.errors import BrokerError, NewswatchError
from newswatch.kafka_settings import BOOTSTRAP_ENV
from newswatch.yamlconf import parse_yaml
from newswatch.stack.demo_server import DemoFeedServer, Served
from newswatch.stack.plan import plan_children, ports_in_use, run_config
from newswatch.stack.status import (StatusSnapshot, alert_payload, format_alert, parse_metrics, rejected_reloads,
                                    summarize)
from newswatch.stack.supervisor import ChildEvent, ChildSpec, Supervisor, guarded

STATUS_INTERVAL = 1.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
PLAIN_STATUS_EVERY = 10.0


class StackError(NewswatchError):
    """`newswatch up` cannot start (a port in use, a missing folder, no broker)."""


# The secret `up` makes for its sink, for `newswatch alerts test` from a second shell (mode 0600,
# removed when `up` stops); never printed.
SINK_SECRET_FILE = "sink-secret"
# What `up` writes in its run folder (besides faust's `<app>-data`); `--fresh` removes these only.
RUN_FILES = ("ingest", "console", "logs", "alerts.jsonl", "served.jsonl", "newswatch.yaml", "up.json",
             SINK_SECRET_FILE)


def write_private(path: Path, text: str) -> None:
    """Write `text` to a new file only its owner can read (0600 from the start, never wider)."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def new_sink_secret() -> str:
    """A fresh Standard Webhooks secret (`whsec_` + base64 of 24 random bytes) for this run only."""
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()


@dataclass
class Console:
    """Where `up` talks to people: a redrawn status line on a terminal, plain lines otherwise."""

    stream: TextIO = field(default_factory=lambda: sys.stdout)
    interactive: bool = False
    _status_shown: bool = False
    _last_plain: tuple[str, float] = ("", 0.0)
    gone: bool = False  # the reader went away (a closed pipe or terminal): nothing more is written

    def say(self, text: str) -> None:
        self._write(("\r\x1b[K" if self._clear_status() else "") + text + "\n")

    def status(self, line: str, now: float) -> None:
        if self.interactive:
            prefix = "\r\x1b[K" if self._clear_status() else ""
            self._status_shown = self._write(prefix + "\x1b[2m" + line + "\x1b[0m")
        elif line != self._last_plain[0] and now - self._last_plain[1] >= PLAIN_STATUS_EVERY:
            self.say(f"status: {line}")
            self._last_plain = (line, now)

    def _clear_status(self) -> bool:
        shown, self._status_shown = self.interactive and self._status_shown, False
        return shown

    def _write(self, text: str) -> bool:
        """Write and flush; never raises. A console whose pipe or terminal is gone (EPIPE, EIO, a
        closed file) goes quiet for good, so that a stop it reports is never lost to the report."""
        if self.gone:
            return False
        try:
            self.stream.write(text)
            self.stream.flush()
            return True
        except (OSError, ValueError):
            self.gone = True
            self._silence_stream()
            return False

    def _silence_stream(self) -> None:
        # Point the dead descriptor at /dev/null: the interpreter's last flush at exit would
        # otherwise fail again on what is still buffered and print "Exception ignored".
        try:
            fd = self.stream.fileno()
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, fd)
            os.close(devnull)
        except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
            pass


@dataclass
class AlertTail:
    """Reads the sink's JSON-lines file as it grows; returns each complete new line once."""

    path: Path
    offset: int = 0
    count: int = 0

    def read_new(self) -> list[str]:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                chunk = handle.read()
        except FileNotFoundError:
            return []
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self.offset += len(complete)
        lines = [line for line in complete.decode("utf-8", errors="replace").splitlines() if line.strip()]
        self.count += len(lines)
        return lines


def check_ports_free(config: AppConfig) -> None:
    ports = ports_in_use(config.up)
    if config.up.console:
        ports["console"] = config.console.port
    busy = {name: port for name, port in ports.items() if not local.port_is_free(port)}
    if busy:
        listing = ", ".join(f"{name} port {port}" for name, port in busy.items())
        raise StackError(f"already in use on 127.0.0.1: {listing}. Is another `newswatch up` running? "
                         "Stop it, or change the ports in the `up:` section of newswatch.yaml.")


class Stack:
    """One run of `newswatch up`. `run()` returns the exit code."""

    def __init__(self, config: AppConfig, config_file: Path, run_dir: Path, console: Console,
                 environ: dict[str, str] | None = None, broker_factory: Callable[[], local.LocalBroker] | None = None,
                 plan: Callable[..., list[ChildSpec]] = plan_children, fresh: bool = False):
        self.fresh = fresh  # forget what earlier runs saw: this run folder's state and the local broker's data
        self.config = config
        self.config_file = config_file
        self.run_dir = run_dir
        self.console = console
        self.environ = dict(os.environ if environ is None else environ)
        self.broker_factory = broker_factory or (lambda: local.LocalBroker(
            data_dir=local.default_data_dir(self.environ), port=local.default_port(self.environ),
            environ=self.environ, progress=lambda msg: console.say(f"kafka: {msg}"),
            launcher_prefix=guarded(())))
        self.plan = plan
        self.broker: local.LocalBroker | None = None
        self.demo: DemoFeedServer | None = None
        self.supervisor: Supervisor | None = None
        self._served_log: TextIO | None = None
        self.restarts = 0
        self.stop_requested = asyncio.Event()
        self.state: dict = {"pid": os.getpid(), "children": {}}

    # --- lifecycle ---------------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        # SIGHUP too: a closed terminal must not leave the broker running without us.
        for signum in STOP_SIGNALS:
            loop.add_signal_handler(signum, self._request_stop, signum)
        try:
            started = await self._start()
            if started:
                await self._watch()
            return 0
        finally:
            await self._shutdown()
            for signum in STOP_SIGNALS:
                loop.remove_signal_handler(signum)

    def _request_stop(self, signum: int) -> None:
        # Act first, then tell: the console never raises, but the stop must not depend on it.
        if not self.stop_requested.is_set():
            self.stop_requested.set()
            self.console.say(f"{signal.Signals(signum).name}: stopping the stack "
                             "(once more to kill the stages at once)")
        elif self.supervisor is not None:
            self.supervisor.kill_now()
            self.console.say(f"{signal.Signals(signum).name} again: killing the stages")

    async def _start(self) -> bool:
        """Bring everything up; False when a stop was requested on the way."""
        demo_dir = self._demo_dir()
        check_ports_free(self.config)
        if self.fresh:
            self._forget_earlier_runs()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        bootstrap = await self._ensure_broker()
        if bootstrap is None:
            return False
        if demo_dir is not None:
            self._start_demo(demo_dir)
        env = {BOOTSTRAP_ENV: bootstrap, "PYTHONUNBUFFERED": "1"}
        if self.config.up.sink is not None:
            secret_env = self.config.up.sink.secret_env
            if not self.environ.get(secret_env):
                # Generated per run and handed to alerts and sink through their environment, and to
                # `newswatch alerts test` through a file only this user can read.
                env[secret_env] = new_sink_secret()
                write_private(self.run_dir / SINK_SECRET_FILE, env[secret_env])
        specs = self.plan(self._write_run_config(), self.config.up, self.run_dir)
        self.supervisor = Supervisor(specs, on_event=self._on_child_event, base_env={**self.environ, **env})
        self.console.say(f"starting {', '.join(s.name for s in specs)} (logs in {self.run_dir / 'logs'})")
        await self.supervisor.start()
        self._write_state()
        if self.config.up.console:
            self.console.say(f"console: http://{self.config.console.host}:{self.config.console.port}/")
        self.console.say("running; alerts appear below as the sink receives them. Ctrl-C stops everything.")
        return True

    def _forget_earlier_runs(self) -> None:
        """`--fresh`: remove what `up` wrote in the run folder (nothing else there) and the local
        broker's data (its topics, so the processors' dedup and the alerts' story state go too).
        Refused for a configured broker and for a local one that is running: they are not ours."""
        if self.config.kafka.is_external(self.environ):
            raise StackError("--fresh resets the local broker's data, and a broker is configured "
                             f"({BOOTSTRAP_ENV} or kafka.bootstrap_servers); use another kafka.topic_prefix instead")
        broker = self.broker_factory()
        status = broker.status()
        if status.running:
            raise StackError(f"--fresh needs the local broker stopped (it runs at {status.bootstrap}, pid "
                             f"{status.pid}): `newswatch kafka stop`, then `newswatch up --fresh`")
        for name in RUN_FILES:
            target = self.run_dir / name
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)
        for faust_data in self.run_dir.glob("*-data") if self.run_dir.is_dir() else ():
            shutil.rmtree(faust_data, ignore_errors=True)
        if Path(broker.data_dir).exists():
            shutil.rmtree(broker.data_dir)
        self.console.say(f"fresh start: removed the state in {self.run_dir} and the broker data in {broker.data_dir}")

    def _write_run_config(self) -> Path:
        """The stages' copy of the config in the run folder (see plan.run_config); validated."""
        data, _ = parse_yaml(self.config_file.read_text(encoding="utf-8"), str(self.config_file))
        path = self.run_dir / "newswatch.yaml"
        yaml = YAML()
        with path.open("w", encoding="utf-8") as handle:
            handle.write(f"# Written by `newswatch up` from {self.config_file}; edit that file, not this one.\n")
            yaml.dump(run_config(data or {}, self.config, self.run_dir), handle)
        load_config(path)
        return path

    def _demo_dir(self) -> Path | None:
        demo = self.config.up.demo_feeds
        if demo is None:
            return None
        folder = self.config.resolve(demo.dir)
        if not folder.is_dir():
            raise StackError(f"{self.config_file}: up.demo_feeds.dir: {folder} is not a folder")
        return folder

    async def _ensure_broker(self) -> str | None:
        kafka = self.config.kafka
        if kafka.is_external(self.environ):
            bootstrap = kafka.bootstrap(self.environ)
            self.console.say(f"kafka: using the configured broker at {bootstrap}")
            if not await asyncio.to_thread(local.metadata_ok, bootstrap, 10.0):
                raise StackError(f"the configured Kafka broker at {bootstrap} does not answer "
                                 f"(from {BOOTSTRAP_ENV} or kafka.bootstrap_servers)")
            return bootstrap
        broker = self.broker_factory()
        began = time.monotonic()
        starting = asyncio.create_task(asyncio.to_thread(broker.start, 180.0))
        stop_wait = asyncio.create_task(self.stop_requested.wait())
        await asyncio.wait([starting, stop_wait], return_when=asyncio.FIRST_COMPLETED)
        stop_wait.cancel()
        if not starting.done():
            # Ctrl-C while the JVM boots: kill it; start() then fails, which is what we want.
            await asyncio.to_thread(broker.stop, 10.0)
            with contextlib.suppress(BrokerError):
                await starting
            return None
        status, started = starting.result()
        if started:
            self.broker = broker
            self.state["broker_pid"] = status.pid
            self.console.say(f"kafka: started at {status.bootstrap} in {time.monotonic() - began:.1f} s "
                             f"(data {status.data_dir})")
        else:
            self.console.say(f"kafka: already running at {status.bootstrap} (pid {status.pid}); "
                             "it keeps running after this stops")
        return status.bootstrap

    def _start_demo(self, folder: Path) -> None:
        served_log = (self.run_dir / "served.jsonl").open("a", encoding="utf-8")

        def record(served: Served) -> None:
            served_log.write(json.dumps(dataclasses.asdict(served)) + "\n")
            served_log.flush()

        self._served_log = served_log
        self.demo = DemoFeedServer(folder, self.config.up.demo_feeds.port, on_served=record).start()
        self.console.say(f"demo feeds: serving {folder} at {self.demo.base_url}")

    async def _watch(self) -> None:
        """Until a stop is requested: print new alerts, refresh the status line."""
        tail = AlertTail(self.run_dir / "alerts.jsonl")
        tail.offset = tail.path.stat().st_size if tail.path.exists() else 0
        process_log = AlertTail(self.run_dir / "logs" / "process.log")  # for rejected watchlist edits
        process_log.offset = process_log.path.stat().st_size if process_log.path.exists() else 0
        ports = {stage: getattr(self.config.up.metrics_ports, stage) for stage in ("ingest", "process", "alerts")}
        began, hinted = time.monotonic(), False
        async with httpx.AsyncClient(timeout=1.0, trust_env=False) as client:
            while not self.stop_requested.is_set():
                self._print_new_alerts(tail)
                for message in rejected_reloads(process_log.read_new()):
                    self.console.say(message)
                snapshot = await self._snapshot(client, ports, tail.count)
                self.console.status(snapshot.line(), time.monotonic())
                if not hinted and self._nothing_new(snapshot, time.monotonic() - began):
                    hinted = True
                    self.console.say(f"no new articles: the demo entries were all published by an earlier run "
                                     f"(ingest remembers what it saw). Add an entry to a file in "
                                     f"{self._demo_dir()} and watch it arrive.")
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.stop_requested.wait(), timeout=STATUS_INTERVAL)
            self._print_new_alerts(tail)  # what arrived while we were asked to stop
            self.console.say(f"final: {(await self._snapshot(client, ports, tail.count)).line()}")

    def _print_new_alerts(self, tail: AlertTail) -> None:
        for line in tail.read_new():
            payload = alert_payload(line)
            if payload is not None:
                self.console.say("\n".join(format_alert(payload)))

    def _nothing_new(self, snapshot: StatusSnapshot, elapsed: float) -> bool:
        """True when the demo feeds were polled for a while and nothing new came of it."""
        return (self.demo is not None and elapsed > 30 and (snapshot.polls or 0) >= 6
                and snapshot.articles == 0 and snapshot.alerts_received == 0)

    async def _snapshot(self, client: httpx.AsyncClient, ports: dict[str, int], received: int) -> StatusSnapshot:
        async def scrape(port: int):
            if not port:
                return None
            try:
                response = await client.get(f"http://127.0.0.1:{port}/metrics")
                return parse_metrics(response.text) if response.status_code == 200 else None
            except httpx.HTTPError:
                return None

        results = await asyncio.gather(*(scrape(port) for port in ports.values()))
        return summarize(dict(zip(ports, results)), received, self.restarts)

    def _on_child_event(self, event: ChildEvent) -> None:
        if event.kind == "started":
            self.state["children"][event.name] = event.pid
            self._write_state()
            self.console.say(f"{event.name}: started (pid {event.pid})")
        elif event.kind in ("crashed", "exited"):
            self.restarts += 1
            self.console.say(f"{event.name}: {event.kind} ({event.detail})")
            if event.log_tail:
                self.console.say("\n".join(f"  | {line}" for line in event.log_tail.splitlines()))
        elif event.kind == "killed":
            self.console.say(f"{event.name}: killed ({event.detail})")
        elif event.kind == "stopped":
            self.console.say(f"{event.name}: stopped ({event.detail})")

    def _write_state(self) -> None:
        """up.json, while running: our pid, the broker's if we started it, each child's current pid."""
        path = self.run_dir / "up.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=2))
        tmp.replace(path)

    async def _shutdown(self) -> None:
        started_any = any(part is not None for part in (self.supervisor, self.demo, self.broker))
        if self.supervisor is not None:
            await self.supervisor.stop()
        if self.demo is not None:
            self.demo.stop()
        if self._served_log is not None:
            self._served_log.close()
        if self.broker is not None:
            self.console.say("kafka: stopping the broker this run started")
            await asyncio.to_thread(self.broker.stop, 30.0)
        (self.run_dir / "up.json").unlink(missing_ok=True)  # present only while the stack runs
        (self.run_dir / SINK_SECRET_FILE).unlink(missing_ok=True)
        if started_any:  # after a refusal before anything started, "stopped" would mislead
            self.console.say("stopped")
