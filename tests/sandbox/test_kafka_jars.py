"""The broker jars are fetched once with Maven and reused from the cache afterwards."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sandbox.errors import KafkaJarsError
from sandbox.kafka.jars import KAFKA_VERSION, ensure_kafka_jars


def path_without_maven(tmp_path: Path) -> str:
    """PATH with every directory holding ``mvn`` replaced by nothing: Maven is not there."""
    keep = [d for d in os.environ["PATH"].split(os.pathsep) if not (Path(d) / "mvn").exists()]
    return os.pathsep.join(keep)


@pytest.mark.slow
def test_the_second_run_reuses_the_cached_jars_without_maven(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = ensure_kafka_jars(cache=tmp_path)
    assert first.downloaded
    assert (first.libs / f"kafka_2.13-{KAFKA_VERSION}.jar").is_file()
    before = {p.name: p.stat().st_mtime_ns for p in first.libs.iterdir()}

    monkeypatch.setenv("PATH", path_without_maven(tmp_path))
    second = ensure_kafka_jars(cache=tmp_path)

    assert not second.downloaded
    assert second.libs == first.libs
    assert {p.name: p.stat().st_mtime_ns for p in second.libs.iterdir()} == before


def test_without_maven_or_a_cache_the_error_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", path_without_maven(tmp_path))
    with pytest.raises(KafkaJarsError, match="KAFKA_BOOTSTRAP_SERVERS"):
        ensure_kafka_jars(cache=tmp_path)
    assert not (tmp_path / f"kafka-{KAFKA_VERSION}" / "libs").exists()


def test_a_failed_resolve_leaves_no_half_filled_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(KafkaJarsError, match="could not resolve"):
        ensure_kafka_jars("0.0.0-does-not-exist", cache=tmp_path)
    assert not (tmp_path / "kafka-0.0.0-does-not-exist" / "libs").exists()
