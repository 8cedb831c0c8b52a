"""Fixtures of the deploy checks: the Docker engine and the images (see support.deploy)."""

from __future__ import annotations

import os
from typing import Any

import pytest

from sandbox.kafka.container import docker_available
from support.deploy.images import (
    JRE_BASE,
    PYTHON_BASE,
    build_kafka_image,
    build_prometheus_image,
    build_segstream_image,
    ensure_base_image,
)
from support.deploy.tools import unavailable

# Ryuk, testcontainers' reaper, is an image of its own that cannot be pulled here; the fixtures
# remove what they start. testcontainers reads this when it is first imported (in a fixture).
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")


@pytest.fixture(scope="session")
def docker_client() -> Any:
    if not docker_available():
        unavailable("no Docker engine answers")
    import docker  # noqa: PLC0415 - only with an engine

    return docker.from_env()


@pytest.fixture(scope="session")
def python_base_image(docker_client: Any) -> str:
    """``$SEGSTREAM_BASE_IMAGE`` (e.g. python:3.11-slim-bookworm), else one made from Debian's
    packages."""
    return os.environ.get("SEGSTREAM_BASE_IMAGE") or ensure_base_image(docker_client, PYTHON_BASE)


@pytest.fixture(scope="session")
def segstream_image(python_base_image: str) -> str:
    """The repository's Dockerfile built from this checkout."""
    return build_segstream_image(python_base_image)


@pytest.fixture(scope="session")
def kafka_image(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> str:
    """``$KAFKA_IMAGE``, else deploy/kafka's image over the cached Apache Kafka jars."""
    explicit = os.environ.get("KAFKA_IMAGE")
    if explicit:
        return explicit
    base = ensure_base_image(docker_client, JRE_BASE)
    return build_kafka_image(base, tmp_path_factory.mktemp("kafka-image"))


@pytest.fixture(scope="session")
def prometheus_image(python_base_image: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """``$PROMETHEUS_IMAGE``, else Debian's Prometheus binaries in an image."""
    explicit = os.environ.get("PROMETHEUS_IMAGE")
    if explicit:
        return explicit
    return build_prometheus_image(python_base_image, tmp_path_factory.mktemp("prometheus-image"))
