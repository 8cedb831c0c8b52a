"""Session-wide fixtures: one real Kafka broker per test run, unique topics and groups per test."""

from __future__ import annotations

import os
import secrets
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from sandbox.kafka.broker import LocalKafka
from sandbox.kafka.container import docker_available, kafka_container
from sandbox.kafka.oidc import OidcProvider
from sandbox.kafka.security import OAuthValidation, generate_security
from support.kafka import TopicFactory

# Two cores shared by a broker, services and the test process: an example that takes 250 ms
# once is noise, not a failure. Hypothesis' per-example deadline would make that a flaky test.
settings.register_profile("segstream", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("segstream")

OIDC_CLIENT_ID = "segstream"
# The OIDC provider of each secured broker, by its SASL_SSL bootstrap servers.
_OIDC_PROVIDERS: dict[str, OidcProvider] = {}


@pytest.fixture(scope="session")
def _session_kafka(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, LocalKafka | None]]:
    existing = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if existing:
        yield existing, None
        return
    if shutil.which("java") is None and docker_available():
        with kafka_container() as bootstrap:
            yield bootstrap, None
        return
    # With the SSL and SASL_SSL listeners too (tests/integration/test_kafka_security.py); the
    # PLAINTEXT one is what every other test uses.
    with _secured_local_kafka(tmp_path_factory, "kafka") as cluster:
        yield cluster.bootstrap_servers, cluster


@contextmanager
def _secured_local_kafka(factory: pytest.TempPathFactory, name: str) -> Iterator[LocalKafka]:
    """A one-node broker with SSL and SASL_SSL listeners, OAUTHBEARER tokens checked against
    a local OIDC provider (running as long as the broker)."""
    oidc = OidcProvider({OIDC_CLIENT_ID: secrets.token_urlsafe(18)}).start()
    try:
        oauth = OAuthValidation(oidc.jwks_url, oidc.audience, oidc.issuer)
        security = generate_security(factory.mktemp(f"{name}-tls"), oauth=oauth)
        with LocalKafka(factory.mktemp(name), security=security) as cluster:
            _OIDC_PROVIDERS[cluster.sasl_ssl_bootstrap_servers] = oidc
            yield cluster
    finally:
        oidc.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(_session_kafka: tuple[str, LocalKafka | None]) -> str:
    """``KAFKA_BOOTSTRAP_SERVERS`` when set; else a local JVM broker; else a container."""
    return _session_kafka[0]


@pytest.fixture(scope="session")
def controllable_kafka(
    _session_kafka: tuple[str, LocalKafka | None], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalKafka]:
    """A broker a test may stop and start (it must leave it running): the session broker when
    this run started it, else one of its own (an external cluster is not ours to stop)."""
    if _session_kafka[1] is not None:
        yield _session_kafka[1]
        return
    with LocalKafka(tmp_path_factory.mktemp("kafka-controllable")) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def secure_kafka(
    _session_kafka: tuple[str, LocalKafka | None], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalKafka]:
    """A broker with SSL (mutual TLS) and SASL_SSL (SCRAM, PLAIN) listeners beside PLAINTEXT:
    the session broker when this run started it, else one of its own (needs Java)."""
    if _session_kafka[1] is not None and _session_kafka[1].security is not None:
        yield _session_kafka[1]
        return
    if shutil.which("java") is None:
        pytest.skip("a broker with security listeners needs Java (sandbox/kafka)")
    with _secured_local_kafka(tmp_path_factory, "kafka-secure") as cluster:
        yield cluster


@pytest.fixture(scope="session")
def secure_kafka_oidc(secure_kafka: LocalKafka) -> OidcProvider:
    """The OIDC provider whose tokens ``secure_kafka`` takes (client id :data:`OIDC_CLIENT_ID`)."""
    return _OIDC_PROVIDERS[secure_kafka.sasl_ssl_bootstrap_servers]


@pytest.fixture(scope="session")
def kafka_cluster3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    """Three KRaft nodes for fault tests (leader moves, a broker killed); started on first use."""
    with LocalKafka(tmp_path_factory.mktemp("kafka3"), nodes=3) as cluster:
        yield cluster


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
