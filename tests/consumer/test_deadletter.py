"""The dead-letter record's headers: the original ones, then one context, never two."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from confluent_kafka import Message

from consumer.deadletter import Failure, dead_letter_headers
from consumer.errors import SinkRejectedError
from schemas.errors import EventDecodeError
from schemas.topics import DLQ_HEADER_PREFIX, HEADER_REPLAY_COUNT

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
