"""The one place the consumer's Kafka clients are made, so each gets the same connection.

Every client of the consumer process (the group consumer, the dead-letter and state-changelog
producers, the readers that restore state and rebuild dedupe history, the admin client of the
topic checks and ``create-topics``) is built by :class:`KafkaClients`: bootstrap servers, TLS and
SASL (:mod:`kafka_config.security`), librdkafka's log lines routed into the JSON logs
(:mod:`kafka_config.logs`) and a ``client.id`` naming the client's role. A caller's own
properties come first and cannot override the connection.

Other tools of the consumer's package (``segstream-dlq``) get the same connection with
``KafkaClients.from_settings(ConsumerSettings())`` and then :meth:`~KafkaClients.consumer`,
:meth:`~KafkaClients.producer`, :meth:`~KafkaClients.admin`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from kafka_config.logs import librdkafka_logger


class _ConnectionSettings(Protocol):
    @property
    def kafka_bootstrap_servers(self) -> str: ...

    def kafka_security_config(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class KafkaClients:
    """``security`` holds librdkafka properties with secrets in clear: never log it."""

    bootstrap_servers: str
    security: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_settings(cls, settings: _ConnectionSettings) -> KafkaClients:
        return cls(settings.kafka_bootstrap_servers, settings.kafka_security_config())

    def config(self, client_id: str, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``extra``, then the connection (bootstrap, security), the log route and ``client.id``."""
        return {
            **(extra or {}),
            "bootstrap.servers": self.bootstrap_servers,
            **self.security,
            "client.id": client_id,
            "logger": librdkafka_logger(),
        }

    def consumer(self, client_id: str, extra: Mapping[str, Any] | None = None) -> Consumer:
        return Consumer(self.config(client_id, extra))

    def producer(self, client_id: str, extra: Mapping[str, Any] | None = None) -> Producer:
        return Producer(self.config(client_id, extra))

    def admin(self, client_id: str = "segstream-consumer-admin") -> AdminClient:
        return AdminClient(self.config(client_id))
