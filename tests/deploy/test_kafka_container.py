"""The broker fixture's container path (tests/conftest.py uses it where Docker answers and no
Java does), run here with the Kafka image built from the Maven jars."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import Producer

from sandbox.kafka.container import kafka_container
from support.deploy.images import IMAGE_TEST_TIMEOUT_S
from support.kafka import TopicFactory, read_all

pytestmark = [pytest.mark.deploy, pytest.mark.timeout(IMAGE_TEST_TIMEOUT_S)]


def test_the_container_broker_stores_and_serves_records(
    kafka_image: str, docker_client: Any
) -> None:
    def ours() -> list[Any]:
        return docker_client.containers.list(all=True, filters={"ancestor": kafka_image})

    before = {c.id for c in ours()}
    with kafka_container(image=kafka_image) as bootstrap:
        assert bootstrap.startswith("127.0.0.1:")
        topic = TopicFactory(bootstrap).create("container", partitions=2)
        producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
        for n in range(10):
            producer.produce(topic, key=f"C-{n % 3}", value=f"event-{n}")
        assert producer.flush(30) == 0
        records = read_all(bootstrap, topic)
        values = sorted(r.value().decode() for r in records)
        assert values == sorted(f"event-{n}" for n in range(10))
        started = {c.id for c in ours()} - before
        assert len(started) == 1
    assert {c.id for c in ours()} - before == set(), "the fixture left its container behind"
