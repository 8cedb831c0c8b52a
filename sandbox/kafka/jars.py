"""Fetch the Apache Kafka broker jars once, with Maven, into a cache outside the repository."""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Final

from sandbox.errors import KafkaJarsError

# The one place the broker version is pinned. 4.1 is a KRaft-only line with the consumer-group
# protocol and Kafka's own CLI classes in kafka-tools; bump it here and the cache key follows.
KAFKA_VERSION: Final = "4.1.1"
LOG4J_VERSION: Final = "2.24.3"

_COMPLETE_MARKER: Final = ".complete"
_log = logging.getLogger(__name__)


def cache_root() -> Path:
    """``$SEGSTREAM_CACHE_DIR``, else ``$XDG_CACHE_HOME/segstream``, else ``~/.cache/segstream``."""
    explicit = os.environ.get("SEGSTREAM_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "segstream"


@dataclass(frozen=True)
class KafkaJars:
    """A complete, ready-to-run set of broker jars."""

    version: str
    libs: Path
    downloaded: bool  # False when an earlier run's cache was reused

    @property
    def classpath(self) -> str:
        return str(self.libs / "*")


def ensure_kafka_jars(version: str = KAFKA_VERSION, cache: Path | None = None) -> KafkaJars:
    """Return the cached jars for ``version``, resolving them with Maven on first use.

    A file lock makes concurrent callers (parallel test sessions, ``make run`` beside a test run)
    wait for one download instead of racing, and the jars are moved into place only once Maven
    finished, so an interrupted fetch never leaves a half-filled directory that looks complete.
    """
    home = (cache or cache_root()) / f"kafka-{version}"
    home.mkdir(parents=True, exist_ok=True)
    libs = home / "libs"
    with (home / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (libs / _COMPLETE_MARKER).exists():
            return KafkaJars(version, libs, downloaded=False)
        _resolve_with_maven(version, home, libs)
    return KafkaJars(version, libs, downloaded=True)


def _resolve_with_maven(version: str, home: Path, libs: Path) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaJarsError(
            "Maven (mvn) is not on PATH and no cached Kafka jars exist at "
            f"{libs}; install Maven or set KAFKA_BOOTSTRAP_SERVERS to an existing cluster"
        )
    pom = home / "pom.xml"
    pom.write_text(resources.files("sandbox.kafka").joinpath("pom.xml").read_text("utf-8"))
    staging = Path(tempfile.mkdtemp(prefix="libs-", dir=home))
    _log.info("fetching Apache Kafka %s jars with Maven into %s", version, libs)
    command = [
        mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
        f"-Dkafka.version={version}", f"-Dlog4j.version={LOG4J_VERSION}",
        f"-DoutputDirectory={staging}", "-DincludeScope=runtime",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not any(staging.glob(f"kafka_2.13-{version}.jar")):
        shutil.rmtree(staging, ignore_errors=True)
        raise KafkaJarsError(
            f"Maven could not resolve Apache Kafka {version} (exit {result.returncode}):\n"
            f"{(result.stdout + result.stderr)[-4000:]}"
        )
    (staging / _COMPLETE_MARKER).write_text(version)
    shutil.rmtree(libs, ignore_errors=True)
    staging.rename(libs)
