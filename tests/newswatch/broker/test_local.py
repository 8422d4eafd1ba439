"""Local broker checks that need no broker: Java detection, ports, properties."""

import os
import random
import socket
import stat

import pytest

from newswatch.broker import local
from newswatch.errors import BrokerError


@pytest.mark.parametrize("output, major", [
    ('openjdk version "17.0.15" 2025-04-15', 17),
    ('openjdk version "25" 2025-09-16', 25),
    ('java version "1.8.0_392"', 8),
    ('openjdk version "11.0.2" 2019-01-15', 11),
    ("no version here", None),
])
def test_parse_java_version(output, major):
    assert local.parse_java_version(output) == major


def fake_java(tmp_path, version_line: str) -> str:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    java = bindir / "java"
    java.write_text(f"#!/bin/sh\necho '{version_line}' >&2\n")
    java.chmod(java.stat().st_mode | stat.S_IEXEC)
    return str(bindir)


def test_old_java_is_refused_with_advice(tmp_path):
    path = fake_java(tmp_path, 'java version "1.8.0_392"')
    with pytest.raises(BrokerError, match="Java 8; the local Kafka broker needs Java 17"):
        local.find_java({"PATH": path})


def test_missing_java_says_what_to_install(tmp_path):
    with pytest.raises(BrokerError, match="Java not found.*JAVA_HOME"):
        local.find_java({"PATH": str(tmp_path)})


def test_java_home_is_preferred(tmp_path):
    home = tmp_path / "jdk"
    (home / "bin").mkdir(parents=True)
    java = home / "bin" / "java"
    java.write_text("#!/bin/sh\necho 'openjdk version \"21.0.1\"' >&2\n")
    java.chmod(0o755)
    assert local.find_java({"JAVA_HOME": str(home), "PATH": ""}) == str(java)


def test_port_in_use_is_refused_before_anything_is_downloaded(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        broker = local.LocalBroker(data_dir=tmp_path / "data", port=port,
                                   environ={**os.environ, "NEWSWATCH_CACHE_DIR": str(tmp_path / "cache")})
        with pytest.raises(BrokerError, match=f"port {port} on 127.0.0.1 is already in use.*--port"):
            broker.start(timeout=5)
    assert not (tmp_path / "cache").exists()


def test_bad_port_variable_is_reported():
    with pytest.raises(BrokerError, match="NEWSWATCH_KAFKA_PORT='abc'"):
        local.default_port({"NEWSWATCH_KAFKA_PORT": "abc"})


def test_server_properties_bind_loopback_only(tmp_path):
    props = local.server_properties(node_dir=tmp_path, port=19092, controller_port=19093)
    assert "listeners=PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093\n" in props
    assert "process.roles=broker,controller\n" in props
    assert f"log.dirs={tmp_path}\n" in props


def test_cluster_ids_are_kafka_uuids():
    ids = {local.new_cluster_id() for _ in range(2000)}  # ~30 would start with '-' if not prevented
    assert len(ids) == 2000 and all(len(i) == 22 and "=" not in i for i in ids)
    assert not any(i.startswith("-") for i in ids)


def test_a_port_in_time_wait_counts_as_free():
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = server.accept()
    assert not local.port_is_free(port)  # listening: taken
    accepted.close()  # the server side closes first, so its end lingers in TIME_WAIT
    client.close()
    server.close()
    assert local.port_is_free(port)


def test_status_of_a_never_started_directory(tmp_path):
    status = local.LocalBroker(data_dir=tmp_path, port=12345).status()
    assert (status.running, status.pid, status.port) == (False, None, 12345)
    assert "stopped" in status.describe() and str(tmp_path) in status.describe()


def test_stop_escalates_to_sigkill_when_sigterm_is_ignored(tmp_path):
    import subprocess
    import sys
    import time

    # A stand-in process that ignores SIGTERM and looks like our broker in this data directory.
    script = "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(120)"
    process = subprocess.Popen([sys.executable, "-c", script, "kafka.Kafka", str(tmp_path)],
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "up"  # SIGTERM is ignored from here on
    (tmp_path / "broker.pid").write_text(str(process.pid))
    broker = local.LocalBroker(data_dir=tmp_path, port=12345)
    assert broker.status().running
    began = time.monotonic()
    assert broker.stop(timeout=1.0) is True
    process.wait(timeout=10)
    assert process.returncode == -9
    assert time.monotonic() - began < 10
    assert not (tmp_path / "broker.pid").exists()


def test_a_recycled_pid_is_not_mistaken_for_the_broker(tmp_path):
    import os
    (tmp_path / "broker.pid").write_text(str(os.getpid()))  # alive, but not a broker
    broker = local.LocalBroker(data_dir=tmp_path, port=12345)
    assert broker.status().running is False
    assert broker.stop() is False


@pytest.mark.parametrize("ephemeral, expected", [
    ("32768\t60999\n", (20000, 32768)),   # Linux's default: the whole listen range is below it
    ("15000 60999", (14000, 15000)),      # a wider ephemeral range: stay below its start
    ("1100 60999", local.LISTEN_PORTS),   # nothing sensible below it: the listen range as it is
    ("", local.LISTEN_PORTS),
    (None, local.LISTEN_PORTS),
])
def test_listen_ports_stay_below_the_ephemeral_range(ephemeral, expected):
    assert local.listen_port_range(ephemeral) == expected


def test_free_port_picks_a_bindable_port_outside_the_ephemeral_range():
    start, end = local.listen_port_range(local.EPHEMERAL_RANGE_FILE.read_text()
                                         if local.EPHEMERAL_RANGE_FILE.exists() else None)
    ports = {local.free_port(random.Random(seed)) for seed in range(5)}
    for port in ports:
        assert start <= port < end
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((local.HOST, port))  # nothing listens there


def test_free_port_skips_a_port_that_is_taken():
    taken = local.free_port(random.Random(7))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind((local.HOST, taken))
        holder.listen()
        assert local.free_port(random.Random(7)) != taken  # the same first pick, refused
