"""Step 8 of the commit steps against the real broker: after a pause, the group itself says
whether this member may still write (the write lease waits for its word)."""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from consumer.processing.commit import confirm_membership
from support.kafka import TopicFactory

pytestmark = pytest.mark.kafka


def member(bootstrap: str, group_id: str, topic: str) -> Consumer:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,  # as the engine's (store, then commit)
            "session.timeout.ms": 6000,
            # Not polling for this long makes the client leave the group (KIP-62): the same
            # end as a member replaced while it was frozen.
            "max.poll.interval.ms": 6000,
        }
    )
    consumer.subscribe([topic])
    deadline = time.monotonic() + 60
    while not consumer.assignment():
        assert time.monotonic() < deadline, "never assigned"
        consumer.poll(0.2)
    return consumer


def members(bootstrap: str, group_id: str) -> int:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    return len(admin.describe_consumer_groups([group_id])[group_id].result(30).members)


def test_a_current_member_is_confirmed(kafka_bootstrap: str, topics: TopicFactory) -> None:
    topic = topics.create("confirm", partitions=2)
    consumer = member(kafka_bootstrap, f"confirm-{uuid.uuid4().hex[:8]}", topic)
    try:
        offsets = [TopicPartition(topic, tp.partition, 0) for tp in consumer.assignment()]
        assert confirm_membership(consumer, offsets) is True
        assert confirm_membership(consumer, []) is None  # nothing to commit: cannot tell
    finally:
        consumer.close()


def test_a_member_the_group_dropped_is_refused(
    kafka_bootstrap: str, topics: TopicFactory, caplog: pytest.LogCaptureFixture
) -> None:
    topic = topics.create("confirm", partitions=2)
    group_id = f"confirm-{uuid.uuid4().hex[:8]}"
    consumer = member(kafka_bootstrap, group_id, topic)
    try:
        offsets = [TopicPartition(topic, tp.partition, 0) for tp in consumer.assignment()]
        # No poll while the group drops it (a frozen process would not poll either).
        deadline = time.monotonic() + 60
        while members(kafka_bootstrap, group_id):
            assert time.monotonic() < deadline, "the group kept the member"
            time.sleep(0.5)  # polling the broker's view, not waiting out a fixed time
        assert confirm_membership(consumer, offsets) is False
        reasons = [str(getattr(r, "reason", "")) for r in caplog.records]
        assert any("UNKNOWN_MEMBER_ID" in r or "ILLEGAL_GENERATION" in r for r in reasons)
    finally:
        consumer.close()
