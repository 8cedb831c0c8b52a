"""The dead-letter record's headers: the original ones, then one context, never two."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest
from confluent_kafka import Message

from consumer.clients import KafkaClients
from consumer.deadletter import DeadLetterPublisher, Failure, dead_letter_headers
from consumer.errors import SinkRejectedError
from schemas.errors import EventDecodeError
from schemas.topics import DLQ_HEADER_PREFIX, HEADER_DLQ_VALUE_OMITTED, HEADER_REPLAY_COUNT
from support.kafka import TopicFactory, read_all

FIRST = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
LATER = datetime(2026, 11, 28, 11, 30, tzinfo=UTC)


def record(headers: list[tuple[str, bytes]], *, offset: int = 42) -> Message:
    return Message(
        topic="interactions",
        partition=3,
        offset=offset,
        key=b"C-1",
        value=b"v",
        headers=headers,
        timestamp=(1, 1_700_000_000_000),
    )


def test_context_headers_follow_the_original_ones() -> None:
    failure = Failure("decode", EventDecodeError("bad magic"), 1, FIRST, FIRST)
    headers = dead_letter_headers(record([("event-id", b"e-1")]), failure, "segstream-crm")
    assert headers[0] == ("event-id", b"e-1")
    context = dict(headers[1:])
    assert context == {
        "segstream.dlq.topic": b"interactions",
        "segstream.dlq.partition": b"3",
        "segstream.dlq.offset": b"42",
        "segstream.dlq.timestamp": b"1700000000000",
        "segstream.dlq.stage": b"decode",
        "segstream.dlq.error.class": b"EventDecodeError",
        "segstream.dlq.error.message": b"bad magic",
        "segstream.dlq.attempts": b"1",
        "segstream.dlq.first.failure": b"2026-11-28T09:00:00.000+00:00",
        "segstream.dlq.last.failure": b"2026-11-28T09:00:00.000+00:00",
        "segstream.dlq.group": b"segstream-crm",
    }


def test_a_replayed_record_that_fails_again_carries_only_the_new_context() -> None:
    first = Failure("decode", EventDecodeError("bad magic"), 1, FIRST, FIRST)
    dead = dead_letter_headers(record([("event-id", b"e-1")], offset=42), first, "segstream-crm")
    # What the replay tool would publish if it kept the old context (it strips it; a record
    # replayed by another tool may not be): the old context plus the replay count.
    replayed = record([*dead, (HEADER_REPLAY_COUNT, b"1")], offset=977)
    again = Failure("sink", SinkRejectedError("422 rejected"), 3, LATER, LATER)

    headers = dead_letter_headers(replayed, again, "segstream-crm")

    names = Counter(name for name, _ in headers)
    assert all(count == 1 for count in names.values()), names
    values = dict(headers)
    assert values["segstream.dlq.offset"] == b"977"
    assert values["segstream.dlq.stage"] == b"sink"
    assert values["segstream.dlq.error.class"] == b"SinkRejectedError"
    assert values["segstream.dlq.attempts"] == b"3"
    assert values["segstream.dlq.first.failure"] == b"2026-11-28T11:30:00.000+00:00"
    assert values[HEADER_REPLAY_COUNT] == b"1"  # the history stays, in the replay count
    assert values["event-id"] == b"e-1"
    assert sum(name.startswith(DLQ_HEADER_PREFIX) for name in names) == 11


# --- a dead letter the dead-letter topic cannot take -------------------------------------------


async def send_and_read(
    bootstrap: str, dead_letters: str, message: Message
) -> tuple[bytes | None, bytes | None, dict[str, bytes]]:
    publisher = DeadLetterPublisher(
        KafkaClients(bootstrap), dead_letters, "segstream-crm", delivery_timeout_ms=10_000
    )
    try:
        failure = Failure("decode", EventDecodeError("bad magic"), 1, FIRST, FIRST)
        await publisher.send(message, failure)
    finally:
        publisher.close()
    [written] = read_all(bootstrap, dead_letters)
    headers = dict(written.headers() or [])
    return written.key(), written.value(), {k: v for k, v in headers.items() if v is not None}


def large(value_bytes: int, key: bytes = b"C-1") -> Message:
    return Message(
        topic="interactions",
        partition=3,
        offset=42,
        key=key,
        value=b"x" * value_bytes,
        headers=[("event-id", b"e-1")],
        timestamp=(1, 1_700_000_000_000),
    )


@pytest.mark.kafka
async def test_a_record_larger_than_the_topic_takes_is_dead_lettered_without_its_value(
    kafka_bootstrap: str, topics: TopicFactory
) -> None:
    # The broker refuses it (the topic's max.message.bytes): sent again as key and context.
    dead_letters = topics.create("dlq", partitions=1, config={"max.message.bytes": "4096"})

    key, value, headers = await send_and_read(kafka_bootstrap, dead_letters, large(6000))

    assert (key, value) == (b"C-1", None)
    assert headers[HEADER_DLQ_VALUE_OMITTED] == b"6000"
    assert headers["segstream.dlq.topic"] == b"interactions"
    assert (headers["segstream.dlq.partition"], headers["segstream.dlq.offset"]) == (b"3", b"42")
    assert headers["segstream.dlq.error.class"] == b"EventDecodeError"
    assert "event-id" not in headers  # the record's own headers may be what made it too large


@pytest.mark.kafka
async def test_a_record_larger_than_the_producer_takes_is_dead_lettered_without_its_value(
    kafka_bootstrap: str, topics: TopicFactory
) -> None:
    # produce() itself refuses it (librdkafka's message.max.bytes, 1,000,000 by default).
    dead_letters = topics.create("dlq", partitions=1)

    key, value, headers = await send_and_read(kafka_bootstrap, dead_letters, large(1_100_000))

    assert (key, value) == (b"C-1", None)
    assert headers[HEADER_DLQ_VALUE_OMITTED] == b"1100000"


@pytest.mark.kafka
async def test_a_key_that_could_be_what_made_it_too_large_is_left_out_too(
    kafka_bootstrap: str, topics: TopicFactory
) -> None:
    dead_letters = topics.create("dlq", partitions=1, config={"max.message.bytes": "4096"})

    key, value, headers = await send_and_read(
        kafka_bootstrap, dead_letters, large(10, key=b"k" * 5000)
    )

    assert (key, value) == (None, None)
    assert headers[HEADER_DLQ_VALUE_OMITTED] == b"10"
