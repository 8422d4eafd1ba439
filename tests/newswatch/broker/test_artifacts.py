"""Fetching and verifying the broker jars, against a local HTTP server standing in for a Maven repository."""

import hashlib
import http.server
import threading
from pathlib import Path

import pytest

from newswatch.broker.artifacts import Artifact, cache_root, ensure_jars, lock_for, parse_lock
from newswatch.errors import BrokerError


@pytest.fixture
def repository(tmp_path):
    """A directory served over HTTP on 127.0.0.1; yields (root dir, base url, request log)."""
    root = tmp_path / "repo"
    root.mkdir()
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):
            requests.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}", requests
    server.shutdown()


def publish(root: Path, group: str, name: str, version: str, content: bytes) -> Artifact:
    artifact = Artifact(group, name, version, hashlib.sha256(content).hexdigest(), len(content))
    path = root / artifact.repository_path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return artifact


def test_pinned_lock_lists_the_broker_and_checksums():
    artifacts = lock_for("4.1.2")
    names = {a.name for a in artifacts}
    assert {"kafka_2.13", "kafka-clients", "kafka-server", "kafka-raft", "scala-library",
            "log4j-core", "log4j-slf4j-impl"} <= names
    assert all(len(a.sha256) == 64 and a.size > 0 for a in artifacts)


def test_unknown_version_is_a_clear_error():
    with pytest.raises(BrokerError, match="no jar list for Kafka 9.9.9"):
        lock_for("9.9.9")


def test_broken_lock_line_is_reported():
    with pytest.raises(BrokerError, match="line 2"):
        parse_lock("# ok\norg.x:y 1234\n")


def test_downloads_verifies_and_caches(repository, tmp_path):
    root, url, requests = repository
    artifacts = [publish(root, "org.example", "one", "1.0", b"first jar"),
                 publish(root, "org.example.deep", "two", "2.1", b"second jar" * 1000)]
    jar_dir = tmp_path / "cache"
    env = {"HOME": str(tmp_path / "home")}
    paths = ensure_jars(artifacts, jar_dir, repository=url, environ=env)
    assert [p.read_bytes() for p in paths] == [b"first jar", b"second jar" * 1000]
    assert sorted(requests) == sorted(f"/{a.repository_path}" for a in artifacts)
    ensure_jars(artifacts, jar_dir, repository=url, environ=env)
    assert len(requests) == 2, "a warm cache must not download again"


def test_checksum_mismatch_is_refused_and_nothing_is_kept(repository, tmp_path):
    root, url, _ = repository
    good = publish(root, "org.example", "one", "1.0", b"genuine")
    (root / good.repository_path).write_bytes(b"tampered")
    with pytest.raises(BrokerError, match="checksum mismatch for org.example:one:1.0"):
        ensure_jars([good], tmp_path / "cache", repository=url, environ={"HOME": str(tmp_path)})
    assert not list((tmp_path / "cache").glob("*.jar"))


def test_missing_jar_says_what_to_do(repository, tmp_path):
    _, url, _ = repository
    ghost = Artifact("org.example", "ghost", "0.1", "0" * 64, 1)
    with pytest.raises(BrokerError, match="HTTP 404.*NEWSWATCH_MAVEN_REPOSITORY"):
        ensure_jars([ghost], tmp_path / "cache", repository=url, environ={"HOME": str(tmp_path)})


def test_unreachable_repository_says_what_to_do(tmp_path):
    ghost = Artifact("org.example", "ghost", "0.1", "0" * 64, 1)
    with pytest.raises(BrokerError, match="cannot fetch org.example:ghost:0.1.*Check the network"):
        ensure_jars([ghost], tmp_path / "cache", repository="http://127.0.0.1:9", environ={"HOME": str(tmp_path)})


def test_local_maven_repository_is_used_when_checksums_match(tmp_path):
    home = tmp_path / "home"
    artifact = publish(home / ".m2" / "repository", "org.example", "one", "1.0", b"from m2")
    paths = ensure_jars([artifact], tmp_path / "cache", repository="http://127.0.0.1:9", environ={"HOME": str(home)})
    assert paths[0].read_bytes() == b"from m2"


def test_cache_root_precedence(tmp_path):
    assert cache_root({"NEWSWATCH_CACHE_DIR": "/x/y"}) == Path("/x/y")
    assert cache_root({"XDG_CACHE_HOME": "/c"}) == Path("/c/newswatch")
