"""Idempotent topic creation: partitions, replication factor and ``min.insync.replicas``."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import NewTopic

from consumer.clients import KafkaClients
from consumer.errors import ConsumerError

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    min_insync_replicas: int


def ensure_topics(clients: KafkaClients, specs: list[TopicSpec], timeout: float = 30.0) -> None:
    """Create what is missing; an existing topic is left as it is (and said so in the log)."""
    admin = clients.admin()
    new = [
        NewTopic(
            spec.name,
            num_partitions=spec.partitions,
            replication_factor=spec.replication_factor,
            config={"min.insync.replicas": str(spec.min_insync_replicas)},
        )
        for spec in specs
    ]
    for name, future in admin.create_topics(new, request_timeout=timeout).items():
        try:
            future.result(timeout)
        except KafkaException as exc:
            error = exc.args[0]
            if isinstance(error, KafkaError) and error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                _log.info("topic %s exists", name, extra={"topic": name})
                continue
            raise ConsumerError(f"cannot create topic {name}: {error}") from exc
        _log.info("topic %s created", name, extra={"topic": name})
