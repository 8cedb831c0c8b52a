"""Every Kafka client of the services is made from the one connection configuration.

The consumer makes its clients only through :class:`consumer.clients.KafkaClients` and the
bridge only through :func:`producer_bridge.publisher.producer_config`; a client constructed
anywhere else would miss TLS/SASL (and fail against a secured cluster) or print raw logs. The
integration tests over TLS and SCRAM (tests/integration/test_kafka_security.py) prove the
configuration reaches the broker; this one catches a new client added elsewhere at once.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from consumer.clients import KafkaClients
from kafka_config.logs import librdkafka_logger
from producer_bridge.publisher import producer_config

ROOT = Path(__file__).parent.parent.parent
CLIENT_CLASSES = {
    "Consumer",
    "Producer",
    "AdminClient",
    "SerializingProducer",
    "DeserializingConsumer",
    "AIOProducer",
    "AIOConsumer",
}
# Where each service builds its clients (the config of every one of them comes from here).
ALLOWED = {"consumer/clients.py", "producer_bridge/publisher.py"}
SECURITY = {
    "security.protocol": "SASL_SSL",
    "sasl.mechanism": "SCRAM-SHA-512",
    "sasl.username": "segstream",
    "sasl.password": "s3cret",
}


def client_constructions(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name in CLIENT_CLASSES:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}(...)")
    return found


@pytest.mark.parametrize("package", ["consumer", "producer_bridge", "kafka_config"])
def test_clients_are_constructed_only_where_the_connection_is_built(package: str) -> None:
    outside = [
        where
        for path in sorted((ROOT / package).rglob("*.py"))
        if str(path.relative_to(ROOT)) not in ALLOWED
        for where in client_constructions(path)
    ]
    assert outside == []


def test_a_callers_properties_cannot_replace_the_connection() -> None:
    clients = KafkaClients("broker-1:9093", SECURITY)
    config = clients.config(
        "segstream-test",
        {"bootstrap.servers": "127.0.0.1:9092", "security.protocol": "PLAINTEXT", "acks": "all"},
    )
    assert config == {
        "bootstrap.servers": "broker-1:9093",
        **SECURITY,
        "acks": "all",
        "client.id": "segstream-test",
        "logger": librdkafka_logger(),
    }


def test_the_connection_is_never_in_a_repr() -> None:
    assert "s3cret" not in repr(KafkaClients("broker-1:9093", SECURITY))


def test_the_bridge_producer_carries_the_security_properties() -> None:
    config = producer_config(
        "broker-1:9093", delivery_timeout_ms=8000, linger_ms=5, security=SECURITY
    )
    assert {key: config[key] for key in SECURITY} == SECURITY
    assert config["enable.idempotence"] is True
