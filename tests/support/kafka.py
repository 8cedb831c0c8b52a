"""Topics per test and reading a topic back, against the real broker."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    IsolationLevel,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

from support.waiting import eventually_sync


@dataclass
class TopicFactory:
    bootstrap_servers: str

    def create(
        self,
        prefix: str = "t",
        partitions: int = 3,
        replicas: int = 1,
        config: dict[str, str] | None = None,
    ) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers})
        topic = NewTopic(name, partitions, replicas, config=config or {})
        for future in admin.create_topics([topic]).values():
            future.result(30)
        return name


def read_all(
    bootstrap_servers: str,
    topic: str,
    timeout: float = 20.0,
    *,
    isolation_level: str = "read_committed",
) -> list[Message]:
    """Every record now in ``topic``, from the start to the end of each partition (its last
    stable offset for ``read_committed``, the high watermark for ``read_uncommitted``).

    The end is found by librdkafka's end-of-partition event, not by the last record's offset: in
    a topic written with transactions the last offsets hold commit markers, never delivered.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": f"reader-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": isolation_level,
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=timeout)
        partitions = list(metadata.topics[topic].partitions)
        ends = {}
        deadline = time.monotonic() + timeout
        for partition in partitions:
            ends[partition] = _high_watermark(consumer, TopicPartition(topic, partition), deadline)
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        records: list[Message] = []
        unfinished = {p for p in partitions if ends[p] > 0}
        while unfinished:
            if time.monotonic() > deadline:
                raise TimeoutError(f"read {len(records)} records of {topic}; want up to {ends}")
            message = consumer.poll(0.5)
            if message is None:
                continue
            partition, offset = message.partition(), message.offset()
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF and offset >= ends[partition]:
                    unfinished.discard(partition)
                continue
            if offset < ends[partition]:
                records.append(message)
            if offset + 1 >= ends[partition]:
                unfinished.discard(partition)
        return records
    finally:
        consumer.close()


def _high_watermark(consumer: Consumer, partition: TopicPartition, deadline: float) -> int:
    """Right after a topic is created (or a broker restarted) its leaders may not be known yet:
    ``NOT_LEADER_FOR_PARTITION`` and the like are retried until ``deadline``."""
    while True:
        try:
            _, high = consumer.get_watermark_offsets(
                partition, max(0.1, deadline - time.monotonic())
            )
            return int(high)
        except KafkaException as exc:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no watermark for {partition}: {exc}") from exc
            time.sleep(0.1)


def end_offsets(
    bootstrap_servers: str,
    timeout: float = 30.0,
    *,
    isolation_level: IsolationLevel = IsolationLevel.READ_UNCOMMITTED,
) -> dict[tuple[str, int], int]:
    """Admin API: the end offset of every partition of every topic: the high watermark, or with
    ``READ_COMMITTED`` the last stable offset (below any transaction still open)."""
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    metadata = admin.list_topics(timeout=timeout)
    wanted = {
        TopicPartition(name, partition): OffsetSpec.latest()
        for name, topic in metadata.topics.items()
        for partition in topic.partitions
    }
    futures = admin.list_offsets(wanted, isolation_level=isolation_level, request_timeout=timeout)
    return {(tp.topic, tp.partition): future.result().offset for tp, future in futures.items()}


def settled_end_offsets(
    bootstrap_servers: str, timeout: float = 30.0
) -> dict[tuple[str, int], int]:
    """The end offsets once no transaction is open anywhere: a transaction's commit markers
    (in its topics and in ``__consumer_offsets``) are written by the coordinator *after* the
    producer's commit returns, so end offsets read at once may still move by a marker."""

    def settled() -> dict[tuple[str, int], int] | None:
        stable = end_offsets(
            bootstrap_servers, timeout, isolation_level=IsolationLevel.READ_COMMITTED
        )
        return stable if stable == end_offsets(bootstrap_servers, timeout) else None

    return eventually_sync(settled, timeout=timeout)


def committed_offsets(
    bootstrap_servers: str, timeout: float = 30.0
) -> dict[str, dict[tuple[str, int], tuple[int, str | None]]]:
    """Admin API: every consumer group's committed offsets, with their metadata."""
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    listing = admin.list_consumer_groups(request_timeout=timeout).result()
    groups: dict[str, dict[tuple[str, int], tuple[int, str | None]]] = {}
    for group in listing.valid:
        request = [ConsumerGroupTopicPartitions(group.group_id)]
        for future in admin.list_consumer_group_offsets(request).values():
            groups[group.group_id] = {
                (tp.topic, tp.partition): (tp.offset, tp.metadata)
                for tp in future.result().topic_partitions
            }
    return groups
