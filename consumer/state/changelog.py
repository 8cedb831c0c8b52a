"""The customer state's changelog topic: written after the sink acknowledged, read on assignment.

The model is Kafka Streams' state-store changelog: a compacted topic with as many partitions as
the input topic, partition *p* holding the state of the customers of input partition *p* (written
with an explicit partition number, so the two line up whatever the producers' partitioners), keyed
by customer id so compaction keeps the latest record per customer. Nothing else stores state: a
new owner of a partition reads its changelog partition from the start before handling a record.

Order of durability, per record: the sink acknowledges the write, then the changelog record is
acknowledged, then the input offset may be committed. A crash in between re-reads the record, and
the sink's Idempotency-Key makes the repeated write harmless.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Final, Protocol

from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from consumer.clients import KafkaClients
from consumer.errors import ConfigurationError, ConsumerError, StateError
from consumer.partition_reader import (
    PartitionReadError,
    read_range,
    standalone_consumer,
    watermarks,
)
from consumer.producing import AcknowledgedProducer
from consumer.topics import describe_topic

ChangelogRecord = tuple[bytes, bytes | None]

# The changelog's own cleanup policy: compaction keeps one record per customer, and tombstones
# (written on eviction) remove it. "delete" would drop state that is still needed by age alone.
REQUIRED_CLEANUP_POLICY: Final = "compact"


def changelog_topic_name(group_id: str) -> str:
    """Kafka Streams' convention, ``{application.id}-{store}-changelog``, with the group id."""
    return f"{group_id}-customer-state-changelog"


class Changelog(Protocol):
    """Where a partition's state changes go, and where they are read back from."""

    async def write(self, partition: int, key: bytes, value: bytes | None) -> None:
        """Return once the record is durable; raise :class:`StateError` when it is not."""

    def write_nowait(self, partition: int, key: bytes, value: bytes | None) -> None:
        """Best effort (eviction tombstones: losing one only costs memory at the next restore)."""

    def read(self, partition: int) -> Iterator[ChangelogRecord]:
        """Every record of the partition, in log order. Blocking; raises :class:`StateError`."""


class KafkaChangelog:
    def __init__(
        self, clients: KafkaClients, topic: str, *, delivery_timeout_ms: int, read_timeout_s: float
    ) -> None:
        self._clients = clients
        self._topic = topic
        self._read_timeout_s = read_timeout_s
        self._producer = AcknowledgedProducer(
            clients,
            client_id="segstream-consumer-state",
            delivery_timeout_ms=delivery_timeout_ms,
            error=lambda reason: StateError(
                f"state changelog {topic} did not acknowledge: {reason}"
            ),
            # A few ms of batching: state records ride along with one another at load, and the
            # record's own latency stays far below the CRM call it follows.
            extra_config={"linger.ms": 2, "compression.type": "lz4"},
        )

    @property
    def topic(self) -> str:
        return self._topic

    async def write(self, partition: int, key: bytes, value: bytes | None) -> None:
        await self._producer.produce(self._topic, key=key, value=value, partition=partition)

    def write_nowait(self, partition: int, key: bytes, value: bytes | None) -> None:
        self._producer.produce_nowait(self._topic, key=key, value=value, partition=partition)

    def read(self, partition: int) -> Iterator[ChangelogRecord]:
        return read_changelog(self._clients, self._topic, partition, self._read_timeout_s)

    def close(self) -> None:
        self._producer.close()


def read_changelog(
    clients: KafkaClients, topic: str, partition: int, timeout_s: float
) -> Iterator[ChangelogRecord]:
    """Every record of one changelog partition, in log order, read outside any group (also
    what ``segstream-dlq replay --dry-run`` reads: it writes nothing). Raises
    :class:`StateError`."""
    deadline = time.monotonic() + timeout_s
    consumer = standalone_consumer(clients, "segstream-state-restore")
    try:
        _, end = watermarks(consumer, topic, partition, deadline)
        records = read_range(
            consumer, topic, partition, start=OFFSET_BEGINNING, end=end, deadline=deadline
        )
        for message in records:
            yield message.key() or b"", message.value()
    except PartitionReadError as exc:
        raise StateError(f"cannot restore customer state: {exc}") from exc
    finally:
        consumer.close()


def ensure_changelog_topic(
    clients: KafkaClients, input_topic: str, changelog_topic: str, *, timeout_s: float = 30.0
) -> None:
    """Create the changelog topic like the input topic, or check that the existing one fits.

    Created with the input topic's partition count, replication factor and
    ``min.insync.replicas`` (the state is exactly as durable as the events), and
    ``cleanup.policy=compact``. Raises :class:`ConfigurationError` when it exists with another
    partition count (state would be read for the wrong customers) or without
    ``cleanup.policy=compact``, or when the input topic does not exist; :class:`StateError` when
    the cluster cannot be asked.
    """
    admin = clients.admin()
    try:
        source = describe_topic(admin, input_topic, timeout_s)
        if source is None:
            raise ConfigurationError(f"input topic {input_topic} does not exist")
        partitions = len(source.partitions)
        existing = describe_topic(admin, changelog_topic, timeout_s)
        if existing is None:
            replicas = len(next(iter(source.partitions.values())).replicas)
            min_isr = _config(admin, input_topic, timeout_s).get("min.insync.replicas", "1")
            if _create(admin, changelog_topic, partitions, replicas, min_isr):
                return
            # It exists after all (another instance created it a moment ago): it must pass the
            # same checks as one found at once, once the cluster describes it whole.
            existing = describe_topic(admin, changelog_topic, timeout_s, exists=True)
    except (ConfigurationError, StateError):
        raise
    except ConsumerError as exc:
        raise StateError(f"cannot describe the topics: {exc}") from exc
    if len(existing.partitions) != partitions:
        raise ConfigurationError(
            f"state changelog {changelog_topic} has {len(existing.partitions)} partitions and "
            f"{input_topic} has {partitions}: they must be co-partitioned (same count)"
        )
    policy = _config(admin, changelog_topic, timeout_s).get("cleanup.policy")
    if policy != REQUIRED_CLEANUP_POLICY:
        raise ConfigurationError(
            f"state changelog {changelog_topic} has cleanup.policy={policy}; it must be "
            f"{REQUIRED_CLEANUP_POLICY} (deleting by age would drop state still in use)"
        )


def _config(admin: AdminClient, topic: str, timeout_s: float) -> dict[str, str]:
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    try:
        entries = admin.describe_configs([resource])[resource].result(timeout_s)
    except KafkaException as exc:
        raise StateError(f"cannot read the configuration of {topic}: {exc}") from exc
    return {name: entry.value for name, entry in entries.items()}


def _create(admin: AdminClient, topic: str, partitions: int, replicas: int, min_isr: str) -> bool:
    """True when this call created the topic; False when it already existed."""
    new = NewTopic(
        topic,
        num_partitions=partitions,
        replication_factor=replicas,
        config={"cleanup.policy": REQUIRED_CLEANUP_POLICY, "min.insync.replicas": min_isr},
    )
    try:
        admin.create_topics([new])[topic].result(30)
    except KafkaException as exc:
        error = exc.args[0]
        if isinstance(error, KafkaError) and error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
            return False
        raise StateError(f"cannot create the state changelog {topic}: {error}") from exc
    return True
