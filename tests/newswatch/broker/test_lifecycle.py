"""`newswatch kafka start | stop | status` on a real broker of its own (not the session broker)."""

import os
import subprocess
import sys

import pytest
from kafka import KafkaProducer

from newswatch.broker import local
from tests.support.kafka import read_records

pytestmark = pytest.mark.integration


def newswatch(*args, env):
    return subprocess.run([sys.executable, "-m", "newswatch", *args], capture_output=True, text=True,
                          env=env, timeout=240)


@pytest.fixture
def broker_env(tmp_path, kafka_bootstrap):  # kafka_bootstrap: the jars are cached and Java works
    port = local.free_port()
    env = {**os.environ, "NEWSWATCH_KAFKA_DATA_DIR": str(tmp_path / "kafka"), "NEWSWATCH_KAFKA_PORT": str(port)}
    yield env, port
    newswatch("kafka", "stop", env=env)


def test_start_twice_runs_one_broker_and_data_survives_a_restart(broker_env):
    env, port = broker_env
    first = newswatch("kafka", "start", env=env)
    assert first.returncode == 0, first.stderr
    assert f"kafka ready at 127.0.0.1:{port}" in first.stdout
    pid = int((env_path(env) / "broker.pid").read_text())

    second = newswatch("kafka", "start", env=env)
    assert second.returncode == 0, second.stderr
    assert f"already running (pid {pid})" in second.stdout
    assert int((env_path(env) / "broker.pid").read_text()) == pid

    status = newswatch("kafka", "status", env=env)
    assert status.returncode == 0
    assert "running" in status.stdout and f"127.0.0.1:{port}" in status.stdout and "4.1.2" in status.stdout

    bootstrap = f"127.0.0.1:{port}"
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    producer.send("kept", key=b"k", value="باقٍ بعد إعادة التشغيل".encode()).get(timeout=30)
    producer.close()

    assert newswatch("kafka", "stop", env=env).stdout.strip() == "stopped"
    stopped = newswatch("kafka", "status", env=env)
    assert stopped.returncode == 3 and "stopped" in stopped.stdout
    assert not local._pid_alive(pid)

    again = newswatch("kafka", "start", env=env)
    assert again.returncode == 0, again.stderr
    [record] = read_records(bootstrap, "kept", min_count=1, timeout=60)
    assert record.value.decode() == "باقٍ بعد إعادة التشغيل"


def env_path(env):
    from pathlib import Path
    return Path(env["NEWSWATCH_KAFKA_DATA_DIR"])


def test_stop_when_nothing_runs(broker_env):
    env, _ = broker_env
    result = newswatch("kafka", "stop", env=env)
    assert (result.returncode, result.stdout.strip()) == (0, "not running")


def test_a_broker_started_with_the_orphan_guard_dies_with_its_starter(tmp_path, kafka_bootstrap):
    """What `newswatch up` relies on: killed outright, it must not leave its broker running."""
    import signal
    import textwrap

    from tests.support.waiting import wait_until

    starter = textwrap.dedent(f"""
        import os, sys, time
        from pathlib import Path
        from newswatch.broker import local
        from newswatch.stack.supervisor import guarded
        broker = local.LocalBroker(data_dir=Path({str(tmp_path / 'kafka')!r}), port=local.free_port(),
                                   controller_port=local.free_port(), launcher_prefix=guarded(()))
        status, _ = broker.start(timeout=120)
        print(status.pid, flush=True)
        time.sleep(600)
    """)
    process = subprocess.Popen([sys.executable, "-c", starter], stdout=subprocess.PIPE, text=True)
    try:
        broker_pid = int(process.stdout.readline())
        assert local._pid_alive(broker_pid)
        assert "kafka.Kafka" in local._cmdline(broker_pid)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        wait_until(lambda: not local._pid_alive(broker_pid), 60, "the broker outlived the process that started it")
    finally:
        process.kill()
        local.LocalBroker(data_dir=tmp_path / "kafka").stop(timeout=10)
