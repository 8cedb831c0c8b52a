"""Idempotent topic creation: partitions, replication factor and ``min.insync.replicas``."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from consumer.errors import ConsumerError
from schemas.topics import AUDIT_SUFFIX, PARKED_SUFFIX

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    min_insync_replicas: int
    config: Mapping[str, str] = field(default_factory=dict)


# Parked records and audit records are kept until someone deletes them: they are the evidence
# of what failed and of who did what about it, and both are small.
KEEP_FOREVER: Final = {"retention.ms": "-1", "retention.bytes": "-1"}


def dead_letter_tool_topics(
    dead_letter_topic: str,
    *,
    partitions: int,
    replication_factor: int,
    min_insync_replicas: int,
    parked_topic: str | None = None,
    audit_topic: str | None = None,
) -> tuple[TopicSpec, TopicSpec]:
    """The parked topic (partitioned like the dead-letter topic) and the audit topic (one
    partition: the runs in the order they happened) of ``segstream-dlq``."""
    parked = parked_topic or f"{dead_letter_topic}{PARKED_SUFFIX}"
    audit = audit_topic or f"{dead_letter_topic}{AUDIT_SUFFIX}"
    return (
        TopicSpec(parked, partitions, replication_factor, min_insync_replicas, KEEP_FOREVER),
        TopicSpec(audit, 1, replication_factor, min_insync_replicas, KEEP_FOREVER),
    )


def ensure_topics(bootstrap_servers: str, specs: list[TopicSpec], timeout: float = 30.0) -> None:
    """Create what is missing; an existing topic is left as it is (and said so in the log)."""
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    new = [
        NewTopic(
            spec.name,
            num_partitions=spec.partitions,
            replication_factor=spec.replication_factor,
            config={**spec.config, "min.insync.replicas": str(spec.min_insync_replicas)},
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
