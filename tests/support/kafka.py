"""Topics per test and reading a topic back, against the real broker."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from confluent_kafka import Consumer, Message, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


@dataclass
class TopicFactory:
    bootstrap_servers: str

    def create(
        self, prefix: str = "t", partitions: int = 3, replicas: int = 1, min_insync: int = 1
    ) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers})
        topic = NewTopic(
            name, partitions, replicas, config={"min.insync.replicas": str(min_insync)}
        )
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
        for partition in partitions:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout)
            ends[partition] = high
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        records: list[Message] = []
        positions = dict.fromkeys(partitions, 0)
        deadline = time.monotonic() + timeout
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
