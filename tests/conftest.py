"""Session-wide fixtures: one real Kafka broker per test run, unique topics and groups per test."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.kafka.broker import LocalKafka
from sandbox.kafka.container import docker_available, kafka_container
from support.kafka import TopicFactory


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``KAFKA_BOOTSTRAP_SERVERS`` when set; else a local JVM broker; else a container."""
    existing = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if existing:
        yield existing
        return
    if shutil.which("java") is None and docker_available():
        with kafka_container() as bootstrap:
            yield bootstrap
        return
    with LocalKafka(tmp_path_factory.mktemp("kafka")) as cluster:
        yield cluster.bootstrap_servers


@pytest.fixture
def topics(kafka_bootstrap: str) -> TopicFactory:
    return TopicFactory(kafka_bootstrap)


@pytest.fixture
def group_id() -> str:
    return f"test-group-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    path = tmp_path / "run"
    path.mkdir()
    return path
