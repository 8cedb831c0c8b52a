"""Topics per test and reading a topic back, against the real broker."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


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


def read_all(bootstrap_servers: str, topic: str, timeout: float = 20.0) -> list[Message]:
    """Every record now in ``topic``, from the start to the high watermark of each partition."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": f"reader-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
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
        positions = dict.fromkeys(partitions, 0)
        while any(positions[p] < ends[p] for p in partitions):
            if time.monotonic() > deadline:
                raise TimeoutError(f"read {len(records)} records of {topic}; want up to {ends}")
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            records.append(message)
            positions[message.partition()] = message.offset() + 1
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


def committed_offsets(bootstrap_servers: str, group_id: str, topic: str) -> dict[int, int]:
    """The group's committed offset per partition of ``topic`` (-1001: none yet), read without
    joining the group."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap_servers, "group.id": group_id, "enable.auto.commit": False}
    )
    try:
        partitions = consumer.list_topics(topic, timeout=20).topics[topic].partitions
        committed = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=20)
        return {tp.partition: tp.offset for tp in committed}
    finally:
        consumer.close()
