"""Reading a dead letter's context, including records the consumer did not write."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from confluent_kafka import Message

from consumer.dlq.records import DeadLetter, Origin


def test_a_consumer_dead_letter_is_read_from_its_context_headers() -> None:
    message = Message(
        topic="dlq",
        partition=2,
        offset=9,
        key=b"C-7",
        value=b"\xc3\x01...",
        headers=[
            ("event-id", b"e-7"),
            ("segstream.dlq.topic", b"interactions.completed.v1"),
            ("segstream.dlq.partition", b"4"),
            ("segstream.dlq.offset", b"1234"),
            ("segstream.dlq.stage", b"sink"),
            ("segstream.dlq.error.class", b"SinkRejectedError"),
            ("segstream.dlq.error.message", b"CRM rejected the payload (422)"),
            ("segstream.dlq.attempts", b"1"),
            ("segstream.dlq.last.failure", b"2026-11-28T09:00:00.250+00:00"),
            ("segstream.dlq.group", b"segstream-crm"),
            ("segstream.replay.count", b"2"),
        ],
        timestamp=(1, 1_000),
    )
    record = DeadLetter.from_message(message)
    assert record.position() == "2@9"
    assert record.customer_id == "C-7"
    assert record.event_id == "e-7"
    assert record.origin == Origin("interactions.completed.v1", 4, 1234)
    assert (record.stage, record.error_class, record.attempts) == ("sink", "SinkRejectedError", 1)
    assert record.error_message == "CRM rejected the payload (422)"
    assert record.dead_lettered_at == datetime(2026, 11, 28, 9, 0, 0, 250_000, tzinfo=UTC)
    assert record.replay_count == 2
    assert record.group == "segstream-crm"


def test_a_foreign_record_has_no_origin_and_falls_back_to_its_timestamp() -> None:
    message = Message(
        topic="dlq",
        partition=0,
        offset=0,
        key=None,
        value=b"x",
        headers=[("segstream.dlq.partition", b"not-a-number"), ("other", None)],
        timestamp=(1, 1_764_320_400_000),
    )
    record = DeadLetter.from_message(message)
    assert record.origin is None
    assert record.customer_id is None
    assert (record.stage, record.error_class) == ("unknown", "unknown")
    assert record.replay_count == 0
    assert record.dead_lettered_at == datetime(2025, 11, 28, 9, 0, tzinfo=UTC)
    assert record.headers[-1] == ("other", b"")


@pytest.mark.parametrize(
    ("partition", "offset"),
    [(b"-1", b"5"), (b"2147483647", b"5"), (b"99999999999999999999999", b"5"), (b"3", b"-1")],
    ids=["negative-partition", "partition-beyond-int32", "huge-partition", "negative-offset"],
)
def test_a_position_no_topic_can_have_is_no_origin(partition: bytes, offset: bytes) -> None:
    message = Message(
        topic="dlq",
        partition=0,
        offset=0,
        key=b"C-1",
        value=b"x",
        headers=[
            ("segstream.dlq.topic", b"interactions.completed.v1"),
            ("segstream.dlq.partition", partition),
            ("segstream.dlq.offset", offset),
        ],
        timestamp=(1, 1_764_320_400_000),
    )
    assert DeadLetter.from_message(message).origin is None
