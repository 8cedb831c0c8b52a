"""The headers of what the tool writes: a replayed record, and a parked dead letter."""

from __future__ import annotations

from datetime import datetime

from consumer.dlq.records import DeadLetter, Headers, Origin
from schemas.topics import (
    DLQ_HEADER_PREFIX,
    HEADER_PARKED_OFFSET,
    HEADER_PARKED_PARTITION,
    HEADER_PARKED_REASON,
    HEADER_PARKED_RUN,
    HEADER_PARKED_TIME,
    HEADER_REPLAY_COUNT,
    HEADER_REPLAY_OFFSET,
    HEADER_REPLAY_PARTITION,
    HEADER_REPLAY_RUN,
    HEADER_REPLAY_TIME,
    HEADER_REPLAY_TOPIC,
    PARKED_HEADER_PREFIX,
    REPLAY_HEADER_PREFIX,
)


def _iso(moment: datetime) -> bytes:
    return moment.isoformat(timespec="milliseconds").encode()


def replay_headers(record: DeadLetter, origin: Origin, run_id: str, now: datetime) -> Headers:
    """The failed record's own headers (``event-id``, ``traceparent``, ...) in their order, then
    the provenance of this replay.

    Dropped: the dead-letter context (``segstream.dlq.*``: it describes the failure, not the
    record; if the replay fails, the consumer writes a fresh one) and an earlier replay's
    provenance (``segstream.replay.*``: replaced, with the count raised by one).
    """
    own = [
        (name, value)
        for name, value in record.headers
        if not name.startswith((DLQ_HEADER_PREFIX, REPLAY_HEADER_PREFIX, PARKED_HEADER_PREFIX))
    ]
    provenance: Headers = [
        (HEADER_REPLAY_COUNT, str(record.replay_count + 1).encode()),
        (HEADER_REPLAY_TOPIC, origin.topic.encode()),
        (HEADER_REPLAY_PARTITION, str(origin.partition).encode()),
        (HEADER_REPLAY_OFFSET, str(origin.offset).encode()),
        (HEADER_REPLAY_RUN, run_id.encode()),
        (HEADER_REPLAY_TIME, _iso(now)),
    ]
    return [*own, *provenance]


def parked_headers(record: DeadLetter, reason: str, run_id: str, now: datetime) -> Headers:
    """All of the dead letter's headers (its context says why it failed), then why, by which
    run, when and from where it was parked. A parked record parked again gets these replaced."""
    kept = [(n, v) for n, v in record.headers if not n.startswith(PARKED_HEADER_PREFIX)]
    added: Headers = [
        (HEADER_PARKED_REASON, reason.encode()),
        (HEADER_PARKED_RUN, run_id.encode()),
        (HEADER_PARKED_TIME, _iso(now)),
        (HEADER_PARKED_PARTITION, str(record.partition).encode()),
        (HEADER_PARKED_OFFSET, str(record.offset).encode()),
    ]
    return [*kept, *added]
