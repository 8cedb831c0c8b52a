"""Idempotent topic creation: partitions, replication factor and ``min.insync.replicas``.

Nothing is created unless everything can be: the cluster must have at least as many brokers as
the largest replication factor asked for, and the whole set is first sent with
``validate_only`` (Kafka's CreateTopics dry run), so a request the cluster would refuse for one
topic does not leave the others created.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal, Protocol, overload

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ClusterMetadata, NewTopic, TopicMetadata

from consumer.clients import KafkaClients
from consumer.errors import ConfigurationError, ConsumerError
from schemas.topics import AUDIT_SUFFIX, PARKED_SUFFIX

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    min_insync_replicas: int
    # Further topic configuration (``cleanup.policy=compact`` for the state changelog).
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


def ensure_topics(
    clients: KafkaClients,
    specs: list[TopicSpec],
    timeout: float = 30.0,
    *,
    env_prefix: str = "SEGSTREAM_CONSUMER_",
    warn_unlike: bool = True,
) -> None:
    """Create what is missing; an existing topic is left as it is (and said so in the log).

    Raises :class:`ConfigurationError` (nothing created) when a replication factor of a topic
    to create exceeds the cluster's brokers or ``min.insync.replicas`` exceeds the replication
    factor, or when the cluster refuses the dry run; :class:`ConsumerError` when the cluster
    cannot be asked. ``env_prefix`` names the settings the error message points at.
    ``warn_unlike``: log a warning for each existing topic whose partitions or replication
    factor differ from its spec (left as it is either way).
    """
    for spec in specs:
        if spec.min_insync_replicas > spec.replication_factor:
            raise ConfigurationError(
                f"topic {spec.name}: min.insync.replicas {spec.min_insync_replicas} is above its "
                f"replication factor {spec.replication_factor}: no write could ever succeed"
            )
    admin = clients.admin()
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise ConsumerError(f"cannot describe the cluster: {exc}") from exc
    brokers = len(metadata.brokers)
    # Only topics still to create need the brokers: existing ones are left as they are, but an
    # operator who asked for more durability than they have is told so.
    for spec in specs if warn_unlike else ():
        if spec.name in metadata.topics:
            _warn_if_unlike(spec, metadata.topics[spec.name])
    absent = [spec for spec in specs if spec.name not in metadata.topics]
    wanted = max((spec.replication_factor for spec in absent), default=0)
    if wanted > brokers:
        raise ConfigurationError(
            f"replication factor {wanted} needs at least {wanted} brokers; the cluster has "
            f"{brokers} (a local one-broker cluster: set {env_prefix}TOPIC_REPLICATION_FACTOR=1 "
            f"and {env_prefix}TOPIC_MIN_INSYNC_REPLICAS=1); nothing was created"
        )
    new = [
        NewTopic(
            spec.name,
            num_partitions=spec.partitions,
            replication_factor=spec.replication_factor,
            config={**spec.config, "min.insync.replicas": str(spec.min_insync_replicas)},
        )
        for spec in specs
    ]
    missing = _create(admin, new, timeout, validate_only=True)
    _create(admin, [topic for topic in new if topic.topic in missing], timeout)
    _wait_until_described(admin, missing, timeout)
    for name in missing:
        _log.info("topic %s created", name, extra={"topic": name})


def _warn_if_unlike(spec: TopicSpec, existing: TopicMetadata) -> None:
    partitions = len(existing.partitions)
    replicas = min((len(p.replicas) for p in existing.partitions.values()), default=0)
    if (partitions, replicas) == (spec.partitions, spec.replication_factor):
        return
    _log.warning(
        "topic %s exists with %d partitions and replication factor %d, not the %d and %d asked "
        "for; left as it is (kafka-topics.sh --alter adds partitions, kafka-reassign-partitions.sh"
        " adds replicas)",
        spec.name,
        partitions,
        replicas,
        spec.partitions,
        spec.replication_factor,
        extra={"topic": spec.name},
    )


def _wait_until_described(admin: AdminClient, names: list[str], timeout: float) -> None:
    """A created topic reaches every broker's metadata a little later (on a cluster of several,
    the one asked next may not know it yet); return once it is described with leaders."""
    deadline = time.monotonic() + timeout
    for name in names:
        describe_topic(admin, name, max(deadline - time.monotonic(), 0.0), exists=True)


class MetadataSource(Protocol):
    """An admin client, producer or consumer: each answers a Metadata request."""

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> ClusterMetadata: ...


@overload
def describe_topic(
    admin: MetadataSource, topic: str, timeout: float, *, exists: Literal[True]
) -> TopicMetadata: ...
@overload
def describe_topic(
    admin: MetadataSource, topic: str, timeout: float, *, exists: bool = False
) -> TopicMetadata | None: ...
def describe_topic(
    admin: MetadataSource, topic: str, timeout: float, *, exists: bool = False
) -> TopicMetadata | None:
    """The topic's metadata once every partition has a leader, or None when the cluster does
    not know the topic.

    A topic that exists is not always described whole: for a moment after its creation (by this
    process or another one starting beside it) a broker answers ``LEADER_NOT_AVAILABLE``, or the
    topic with no partitions at all, or does not know it yet. Taken at its word, that answer
    reads as "0 partitions", which fails a co-partitioning check or says "does not exist"; so it
    is asked again, every 0.2 s, until ``timeout`` (seconds). ``exists``: the topic is known to
    exist (CreateTopics answered ``TOPIC_ALREADY_EXISTS``, or created it), so "unknown topic" is
    a stale answer too. Raises :class:`ConsumerError` when the cluster cannot be asked or the
    topic is not described whole in time.
    """
    deadline = time.monotonic() + timeout
    described = _poll_described(admin, topic, deadline, absent_is_final=not exists)
    if described is not None and _whole(described):
        return described
    if described is None and not exists:
        return None
    raise ConsumerError(f"topic {topic} is not described with leaders within {timeout:.0f} s")


def _poll_described(
    admin: MetadataSource, topic: str, deadline: float, *, absent_is_final: bool
) -> TopicMetadata | None:
    """The whole description; None when absent (at once when ``absent_is_final``, else at the
    deadline); the last partial one at the deadline."""
    while True:
        try:
            metadata = admin.list_topics(topic, timeout=max(deadline - time.monotonic(), 0.1))
        except KafkaException as exc:
            raise ConsumerError(f"cannot describe {topic}: {exc}") from exc
        described = metadata.topics.get(topic)
        absent = described is None or (
            described.error is not None
            and described.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
        )
        if absent and absent_is_final:
            return None
        if described is not None and not absent and _whole(described):
            return described
        if time.monotonic() > deadline:
            return None if absent else described
        time.sleep(0.2)


def _whole(described: TopicMetadata) -> bool:
    return (
        described.error is None
        and bool(described.partitions)
        and all(p.leader >= 0 for p in described.partitions.values())
    )


def _create(
    admin: AdminClient, new: list[NewTopic], timeout: float, *, validate_only: bool = False
) -> list[str]:
    """Names of the topics the (dry) run created; existing ones are logged and left out."""
    if not new:
        return []
    created = []
    futures = admin.create_topics(new, request_timeout=timeout, validate_only=validate_only)
    for name, future in futures.items():
        try:
            future.result(timeout)
        except KafkaException as exc:
            error = exc.args[0]
            if isinstance(error, KafkaError) and error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                if validate_only:
                    _log.info("topic %s exists", name, extra={"topic": name})
                continue
            kind = ConfigurationError if validate_only else ConsumerError
            dry = "; nothing was created" if validate_only else ""
            raise kind(f"cannot create topic {name}: {error}{dry}") from exc
        created.append(name)
    return created
