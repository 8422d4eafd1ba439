"""Run one local Kafka broker (combined broker + controller, KRaft) from the cached jars.

Layout of a data directory:
    broker.json        cluster id, version and ports chosen at the first start (kept)
    server.properties  written at every start from the current settings
    kraft/             the log directory, formatted once
    logs/              broker.log (log4j2) and broker.out (the JVM's stdout/stderr)
    broker.pid         present while a broker started by us runs
"""

from __future__ import annotations

import base64
import json
import logging
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from newswatch.broker import artifacts
from newswatch.errors import BrokerError

DATA_ENV = "NEWSWATCH_KAFKA_DATA_DIR"
PORT_ENV = "NEWSWATCH_KAFKA_PORT"
CONTROLLER_PORT_ENV = "NEWSWATCH_KAFKA_CONTROLLER_PORT"
HOST = "127.0.0.1"
MIN_JAVA = 17


def default_data_dir(environ: Mapping[str, str] | None = None) -> Path:
    """NEWSWATCH_KAFKA_DATA_DIR, else $XDG_DATA_HOME/newswatch/kafka, else ~/.local/share/newswatch/kafka."""
    env = os.environ if environ is None else environ
    if env.get(DATA_ENV):
        return Path(env[DATA_ENV]).expanduser()
    base = Path(env["XDG_DATA_HOME"]).expanduser() if env.get("XDG_DATA_HOME") else Path.home() / ".local/share"
    return base / "newswatch" / "kafka"


def default_port(environ: Mapping[str, str] | None = None, variable: str = PORT_ENV,
                 default: str = "9092") -> int | None:
    """The port from `variable` (NEWSWATCH_KAFKA_PORT by default), else `default` (None if empty)."""
    env = os.environ if environ is None else environ
    raw = env.get(variable) or default
    if not raw:
        return None
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise BrokerError(f"{variable}={raw!r} is not a TCP port number")
    return int(raw)


@dataclass(frozen=True)
class BrokerStatus:
    running: bool
    pid: int | None
    port: int | None
    data_dir: Path
    version: str

    @property
    def bootstrap(self) -> str | None:
        return f"{HOST}:{self.port}" if self.port else None

    def describe(self) -> str:
        state = "running" if self.running else "stopped"
        lines = [f"state:     {state}"]
        if self.running:
            lines.append(f"pid:       {self.pid}")
            lines.append(f"bootstrap: {self.bootstrap}")
        else:
            lines.append(f"port:      {self.port or '-'}")
        lines.append(f"data dir:  {self.data_dir}")
        lines.append(f"version:   Kafka {self.version}")
        return "\n".join(lines)


def parse_java_version(output: str) -> int | None:
    """The major version from `java -version` output ("1.8.0_392" is 8, "17.0.15" is 17)."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', output)
    if not match:
        return None
    major = int(match[1])
    return int(match[2] or 0) if major == 1 else major


def find_java(environ: Mapping[str, str] | None = None) -> str:
    """A Java 17+ executable (JAVA_HOME first, then PATH), or BrokerError saying what to install."""
    env = os.environ if environ is None else environ
    candidates = []
    if env.get("JAVA_HOME"):
        candidates.append(str(Path(env["JAVA_HOME"]) / "bin" / "java"))
    found = shutil.which("java", path=env.get("PATH"))
    if found:
        candidates.append(found)
    if not candidates:
        raise BrokerError("Java not found: the local Kafka broker needs Java 17 or newer. "
                          "Install a JDK or JRE (e.g. `apt-get install openjdk-17-jre-headless`) "
                          "or set JAVA_HOME.")
    for java in candidates:
        try:
            result = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        major = parse_java_version(result.stderr + result.stdout)
        if major is not None and major >= MIN_JAVA:
            return java
        if major is not None:
            raise BrokerError(f"{java} is Java {major}; the local Kafka broker needs Java {MIN_JAVA} or newer. "
                              "Install a newer JDK or point JAVA_HOME at one.")
    raise BrokerError(f"could not run {candidates[0]} -version; check the Java installation or JAVA_HOME")


def port_is_free(port: int, host: str = HOST) -> bool:
    """True when nothing listens on the port (a closed socket lingering in TIME_WAIT does not count,
    since the JVM binds with SO_REUSEADDR too)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


# Where free_port() looks: below the kernel's ephemeral range, so a port it hands out cannot be taken
# as the source port of some other process's outgoing connection before the broker binds it (seen:
# "port 40238 ... is already in use" on a busy machine with port 0's pick).
LISTEN_PORTS = (20000, 32768)
EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def listen_port_range(ephemeral: str | None) -> tuple[int, int]:
    """The ports free_port() picks from (start inclusive, end exclusive): LISTEN_PORTS, cut to end
    below the ephemeral range `ephemeral` ("low high", as the kernel prints it) when that starts lower."""
    start, end = LISTEN_PORTS
    try:
        low = int((ephemeral or "").split()[0])
    except (IndexError, ValueError):
        return start, end
    if low - 1000 > 1024:
        end = min(end, low)
        start = min(start, end - 1000)
    return start, end


def free_port(rng: random.Random | None = None) -> int:
    """A port nothing listens on, outside the ephemeral range where possible (see LISTEN_PORTS)."""
    rng = rng or random.SystemRandom()
    try:
        ephemeral = EPHEMERAL_RANGE_FILE.read_text()
    except OSError:
        ephemeral = None
    start, end = listen_port_range(ephemeral)
    for _ in range(200):
        port = rng.randrange(start, end)
        if port_is_free(port):
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:  # a crowded range: let the kernel pick
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def new_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding.

    Like Kafka's own generator it never starts with '-', which the storage tool would take for an option.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


def server_properties(*, node_dir: Path, port: int, controller_port: int,
                      extra: Mapping[str, str] | None = None) -> str:
    """The broker's configuration: one node that is broker and controller, on loopback only."""
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{HOST}:{controller_port}",
        "listeners": f"PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(node_dir),
        # One node: every internal topic has one replica.
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "10",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "10",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        # Consumers join at once instead of waiting 3 s for more members that never come.
        "group.initial.rebalance.delay.ms": "0",
        "num.partitions": "1",
        "log.retention.hours": "168",
    }
    props.update(extra or {})
    return "".join(f"{key}={value}\n" for key, value in props.items())


def _pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (FileNotFoundError, IndexError, ProcessLookupError):
        pass
    except OSError:
        try:
            os.kill(pid, 0)
            return True
        except OSError:
            return False
    return False


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@dataclass
class LocalBroker:
    """One broker in one data directory. Methods are safe to call from separate processes."""

    data_dir: Path = field(default_factory=default_data_dir)
    port: int = 9092
    controller_port: int | None = None
    heap_mb: int = 512
    version: str = artifacts.KAFKA_VERSION
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    progress: Callable[[str], None] = lambda _msg: None
    # Prepended to the java command line; `newswatch up` passes its orphan guard here so a broker it
    # started dies with it even when it is killed outright. Empty: the broker outlives its starter.
    launcher_prefix: tuple[str, ...] = ()
    _process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "broker.pid"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def meta_file(self) -> Path:
        return self.data_dir / "broker.json"

    def _running_pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        # Guard against a recycled pid: it must be our broker, in our data directory.
        if _pid_alive(pid) and "kafka.Kafka" in _cmdline(pid) and str(self.data_dir) in _cmdline(pid):
            return pid
        return None

    def _meta(self) -> dict:
        try:
            return json.loads(self.meta_file.read_text())
        except (OSError, ValueError):
            return {}

    def status(self) -> BrokerStatus:
        meta = self._meta()
        pid = self._running_pid()
        return BrokerStatus(running=pid is not None, pid=pid, port=meta.get("port", self.port),
                            data_dir=self.data_dir, version=meta.get("version", self.version))

    def start(self, timeout: float = 120.0) -> tuple[BrokerStatus, bool]:
        """Start the broker and wait until it answers a metadata request.

        Returns (status, started): started is False when a broker was already running here.
        """
        current = self.status()
        if current.running:
            return current, False
        java = find_java(self.environ)
        controller_port = self.controller_port or self.port + 1
        for port in (self.port, controller_port):
            if not port_is_free(port):
                raise BrokerError(
                    f"port {port} on {HOST} is already in use by another program. Stop it, or choose "
                    f"another port with `newswatch kafka start --port N` (or {PORT_ENV}).")
        cache = artifacts.cache_root(self.environ) / "kafka" / self.version
        jars = artifacts.ensure_jars(artifacts.lock_for(self.version), cache / "jars",
                                     environ=self.environ, progress=self.progress)
        node_dir = self.data_dir / "kraft"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        meta = self._meta()
        if meta.get("version") not in (None, self.version):
            raise BrokerError(f"{self.data_dir} holds data of Kafka {meta['version']}, not {self.version}; "
                              "use another data directory (--data-dir) or remove it.")
        meta.setdefault("cluster_id", new_cluster_id())
        meta.update(version=self.version, port=self.port, controller_port=controller_port)
        properties = self.data_dir / "server.properties"
        properties.write_text(server_properties(node_dir=node_dir, port=self.port,
                                                controller_port=controller_port))
        log_config = self.data_dir / "log4j2.xml"
        shutil.copyfile(Path(artifacts.__file__).parent / "log4j2.xml", log_config)
        classpath = os.pathsep.join(str(j) for j in jars)
        jvm_common = [f"-Dlog4j2.configurationFile={log_config}", f"-Dnewswatch.log.dir={self.log_dir}",
                      f"-Dkafka.logs.dir={self.log_dir}", "-Djava.awt.headless=true"]
        if not (node_dir / "meta.properties").exists():
            self.progress(f"formatting KRaft storage in {node_dir} (cluster {meta['cluster_id']})")
            result = subprocess.run(
                [java, "-Xmx256m", *jvm_common, "-cp", classpath, "kafka.tools.StorageTool", "format",
                 "--ignore-formatted", "-t", meta["cluster_id"], "-c", str(properties)],
                capture_output=True, text=True, timeout=120)
            if result.returncode != 0:
                raise BrokerError(f"formatting the broker's storage failed:\n{result.stdout}{result.stderr}")
        self.meta_file.write_text(json.dumps(meta, indent=2))
        out = (self.log_dir / "broker.out").open("ab")
        command = [*self.launcher_prefix, java, f"-Xms{min(256, self.heap_mb)}m", f"-Xmx{self.heap_mb}m", "-XX:+ExitOnOutOfMemoryError",
                   *jvm_common, "-cp", classpath, "kafka.Kafka", str(properties)]
        self._process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True, cwd=self.data_dir)
        out.close()
        self.pid_file.write_text(str(self._process.pid))
        try:
            self._wait_ready(timeout)
        except BrokerError:
            self.stop(timeout=10)
            raise
        return self.status(), True

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        bootstrap = f"{HOST}:{self.port}"
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise BrokerError(f"the broker exited with code {self._process.returncode} while starting; "
                                  f"last lines of {self.log_dir / 'broker.log'}:\n{self._log_tail()}")
            if metadata_ok(bootstrap, timeout=min(5.0, max(0.5, deadline - time.monotonic()))):
                return
            time.sleep(0.2)
        raise BrokerError(f"the broker did not answer a metadata request on {bootstrap} within {timeout:.0f} s; "
                          f"see {self.log_dir / 'broker.log'}:\n{self._log_tail()}")

    def _log_tail(self, lines: int = 15) -> str:
        for name in ("broker.out", "broker.log"):
            path = self.log_dir / name
            if path.exists() and path.stat().st_size:
                return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        return "(no log output)"

    def stop(self, timeout: float = 30.0) -> bool:
        """SIGTERM, wait up to `timeout`, then SIGKILL. Returns False when nothing was running."""
        pid = self._running_pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        if not self._wait_gone(pid, timeout):
            os.kill(pid, signal.SIGKILL)
            self._wait_gone(pid, 10)
        self.pid_file.unlink(missing_ok=True)
        return True

    def _wait_gone(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.pid == pid:
                try:
                    self._process.wait(timeout=0.1)
                    return True
                except subprocess.TimeoutExpired:
                    continue
            if not _pid_alive(pid):
                return True
            time.sleep(0.1)
        return False


def metadata_ok(bootstrap: str, timeout: float = 5.0) -> bool:
    """True when the broker at `bootstrap` answers a metadata request with at least one broker."""
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError:
        return False
    from kafka import KafkaAdminClient  # imported late: kafka-python is slow to import
    kafka_log = logging.getLogger("kafka")
    previous = kafka_log.level
    kafka_log.setLevel(logging.CRITICAL)  # connection refusals while starting are expected noise
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000),
                                 client_id="newswatch-probe")
        try:
            return bool(admin.describe_cluster().get("brokers"))
        finally:
            admin.close()
    except Exception:  # any failure of the probe just means "not ready yet"
        return False
    finally:
        kafka_log.setLevel(previous)
