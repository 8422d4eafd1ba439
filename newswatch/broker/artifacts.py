"""Fetch the pinned Kafka broker jars once, verify their SHA-256, and cache them.

The lock file beside this module lists every runtime jar of the broker with its checksum
and size, so a user's machine needs only Java: no Maven, no distribution tarball. Jars
are looked for in the cache, then in a local Maven repository (~/.m2), then downloaded.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

from newswatch.errors import BrokerError

KAFKA_VERSION = "4.1.2"
DEFAULT_REPOSITORY = "https://repo1.maven.org/maven2"
REPOSITORY_ENV = "NEWSWATCH_MAVEN_REPOSITORY"
CACHE_ENV = "NEWSWATCH_CACHE_DIR"
_LOCK_DIR = Path(__file__).parent


@dataclass(frozen=True)
class Artifact:
    group: str
    name: str
    version: str
    sha256: str
    size: int

    @property
    def filename(self) -> str:
        return f"{self.name}-{self.version}.jar"

    @property
    def repository_path(self) -> str:
        return f"{self.group.replace('.', '/')}/{self.name}/{self.version}/{self.filename}"

    @property
    def coordinate(self) -> str:
        return f"{self.group}:{self.name}:{self.version}"


def parse_lock(text: str) -> list[Artifact]:
    """Read `group:artifact:version sha256 bytes` lines (comments with #)."""
    artifacts = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            coordinate, sha256, size = line.split()
            group, name, version = coordinate.split(":")
            artifacts.append(Artifact(group, name, version, sha256.lower(), int(size)))
        except ValueError:
            raise BrokerError(f"broken jar lock file, line {number}: {line!r}") from None
    return artifacts


def lock_for(version: str = KAFKA_VERSION) -> list[Artifact]:
    path = _LOCK_DIR / f"kafka-{version}.lock"
    if not path.exists():
        raise BrokerError(f"no jar list for Kafka {version} (have: {', '.join(available_versions())})")
    return parse_lock(path.read_text(encoding="utf-8"))


def available_versions() -> list[str]:
    return sorted(p.stem.removeprefix("kafka-") for p in _LOCK_DIR.glob("kafka-*.lock"))


def cache_root(environ: Mapping[str, str] | None = None) -> Path:
    """NEWSWATCH_CACHE_DIR, else $XDG_CACHE_HOME/newswatch, else ~/.cache/newswatch."""
    env = os.environ if environ is None else environ
    if env.get(CACHE_ENV):
        return Path(env[CACHE_ENV]).expanduser()
    base = Path(env["XDG_CACHE_HOME"]).expanduser() if env.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "newswatch"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _is_good(path: Path, artifact: Artifact) -> bool:
    return path.is_file() and path.stat().st_size == artifact.size and _sha256(path) == artifact.sha256


def ensure_jars(artifacts: list[Artifact], jar_dir: Path, *, repository: str | None = None,
                environ: Mapping[str, str] | None = None,
                progress: Callable[[str], None] = lambda _msg: None,
                client: httpx.Client | None = None) -> list[Path]:
    """Make sure every artifact is in `jar_dir` with the pinned checksum; return their paths.

    A jar already in the cache is trusted once its checksum was verified (a `.ok` marker
    records that), so a warm start does not re-hash 45 MB.
    """
    env = os.environ if environ is None else environ
    repository = (repository or env.get(REPOSITORY_ENV) or DEFAULT_REPOSITORY).rstrip("/")
    jar_dir.mkdir(parents=True, exist_ok=True)
    marker = jar_dir / ".ok"
    expected = "\n".join(f"{a.coordinate} {a.sha256}" for a in artifacts)
    paths = [jar_dir / a.filename for a in artifacts]
    if marker.exists() and marker.read_text() == expected and all(p.exists() for p in paths):
        return paths

    missing = [a for a in artifacts if not _is_good(jar_dir / a.filename, a)]
    local_m2 = Path(env.get("HOME", str(Path.home()))) / ".m2" / "repository"
    to_download = []
    for artifact in missing:
        candidate = local_m2 / artifact.repository_path
        if _is_good(candidate, artifact):
            shutil.copyfile(candidate, jar_dir / artifact.filename)
        else:
            to_download.append(artifact)
    if to_download:
        total = sum(a.size for a in to_download)
        progress(f"fetching {len(to_download)} of {len(artifacts)} jars ({total / 1e6:.1f} MB) "
                 f"from {repository} ...")
        own_client = client is None
        client = client or httpx.Client(timeout=httpx.Timeout(30.0), follow_redirects=True)
        try:
            with ThreadPoolExecutor(max_workers=6) as pool:
                for _ in pool.map(lambda a: _download(client, repository, a, jar_dir), to_download):
                    pass
        finally:
            if own_client:
                client.close()
    marker.write_text(expected)
    return paths


def _download(client: httpx.Client, repository: str, artifact: Artifact, jar_dir: Path) -> None:
    url = f"{repository}/{artifact.repository_path}"
    target = jar_dir / artifact.filename
    partial = target.with_suffix(f".part{os.getpid()}")
    digest = hashlib.sha256()
    try:
        with client.stream("GET", url) as response:
            if response.status_code != 200:
                raise BrokerError(
                    f"cannot fetch {artifact.coordinate}: HTTP {response.status_code} from {url}. "
                    f"Check the network, or point {REPOSITORY_ENV} at a Maven repository mirror.")
            with partial.open("wb") as handle:
                for chunk in response.iter_bytes(1 << 16):
                    digest.update(chunk)
                    handle.write(chunk)
    except httpx.HTTPError as exc:
        partial.unlink(missing_ok=True)
        raise BrokerError(
            f"cannot fetch {artifact.coordinate} from {url}: {exc}. "
            f"Check the network, or point {REPOSITORY_ENV} at a Maven repository mirror.") from None
    if digest.hexdigest() != artifact.sha256:
        partial.unlink(missing_ok=True)
        raise BrokerError(f"checksum mismatch for {artifact.coordinate} from {url}: "
                          f"expected sha256 {artifact.sha256}, got {digest.hexdigest()}. Refusing to use it.")
    partial.replace(target)
