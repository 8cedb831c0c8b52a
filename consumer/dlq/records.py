"""One record of the dead-letter topic, read through its ``segstream.dlq.*`` context headers.

The consumer writes a dead letter as the failed record (key, value, headers) plus the context
headers named in :mod:`schemas.topics`; this is the reading side. Nothing here fails on a
record that lacks them (somebody else may write to the topic): a missing header is ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from confluent_kafka import Message

from schemas.codec import EventCodec
from schemas.topics import (
    HEADER_DLQ_ATTEMPTS,
    HEADER_DLQ_ERROR_CLASS,
    HEADER_DLQ_ERROR_MESSAGE,
    HEADER_DLQ_GROUP,
    HEADER_DLQ_LAST_FAILURE,
    HEADER_DLQ_OFFSET,
    HEADER_DLQ_PARTITION,
    HEADER_DLQ_STAGE,
    HEADER_DLQ_TOPIC,
    HEADER_DLQ_VALUE_OMITTED,
    HEADER_EVENT_ID,
    HEADER_REPLAY_COUNT,
)

Headers = list[tuple[str, bytes]]
UNKNOWN = "unknown"


@dataclass(frozen=True)
class Origin:
    """Where the failed record was: the record a replay re-publishes."""

    topic: str
    partition: int
    offset: int


# Kafka's partition numbers are 32-bit signed ints: a header beyond them (or below 0) is not a
# position in any topic, and the record has no origin.
MAX_PARTITION: Final = 2**31 - 1


@dataclass(frozen=True)
class DeadLetter:
    """A dead-letter record: its own position, the failed record's bytes, and the context."""

    partition: int  # in the dead-letter topic
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers
    dead_lettered_at: datetime  # the last failure, else the dead-letter record's timestamp
    origin: Origin | None  # None: not written by the consumer, nowhere to replay it to
    stage: str
    error_class: str
    error_message: str
    attempts: int | None
    group: str | None
    replay_count: int  # replays so far (0 for a record that never was replayed)
    event_id: str | None
    value_omitted: int | None = None
    """The size of the value the consumer left out (too large for the dead-letter topic), or
    ``None``: such a dead letter cannot be replayed, its record is only at its origin."""

    @classmethod
    def from_message(cls, message: Message) -> DeadLetter:
        headers = _headers(message)
        values = dict(headers)  # a repeated header: the last one counts, as the consumer reads
        text = {name: value.decode(errors="replace") for name, value in values.items()}
        origin = None
        topic, partition, offset = (
            text.get(HEADER_DLQ_TOPIC),
            _int(text.get(HEADER_DLQ_PARTITION)),
            _int(text.get(HEADER_DLQ_OFFSET)),
        )
        if (
            topic
            and partition is not None
            and offset is not None
            and 0 <= partition < MAX_PARTITION
            and offset >= 0
        ):
            origin = Origin(topic, partition, offset)
        return cls(
            partition=message.partition() or 0,
            offset=message.offset() or 0,
            key=message.key(),
            value=message.value(),
            headers=headers,
            dead_lettered_at=_failure_time(text.get(HEADER_DLQ_LAST_FAILURE), message),
            origin=origin,
            stage=text.get(HEADER_DLQ_STAGE) or UNKNOWN,
            error_class=text.get(HEADER_DLQ_ERROR_CLASS) or UNKNOWN,
            error_message=text.get(HEADER_DLQ_ERROR_MESSAGE) or "",
            attempts=_int(text.get(HEADER_DLQ_ATTEMPTS)),
            group=text.get(HEADER_DLQ_GROUP),
            replay_count=max(_int(text.get(HEADER_REPLAY_COUNT)) or 0, 0),
            event_id=text.get(HEADER_EVENT_ID),
            value_omitted=_int(text.get(HEADER_DLQ_VALUE_OMITTED)),
        )

    @property
    def customer_id(self) -> str | None:
        return self.key.decode(errors="replace") if self.key is not None else None

    def position(self) -> str:
        return f"{self.partition}@{self.offset}"


def _headers(message: Message) -> Headers:
    raw = message.headers() or []
    items = raw.items() if isinstance(raw, dict) else raw
    result: Headers = []
    for name, value in items:
        if value is None:
            result.append((name, b""))
        else:
            result.append((name, value.encode() if isinstance(value, str) else bytes(value)))
    return result


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _failure_time(text: str | None, message: Message) -> datetime:
    if text:
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            return parsed.astimezone(UTC)
    kind, millis = message.timestamp()
    if kind and millis > 0:
        return datetime.fromtimestamp(millis / 1000, tz=UTC)
    return datetime.fromtimestamp(0, tz=UTC)


class TopicCodecs:
    """The codec of each original topic (a Confluent-framed value's schema is registered under
    its topic's subject); records without an origin use ``default_topic``'s."""

    def __init__(self, default_topic: str, registry_url: str | None) -> None:
        self._default_topic = default_topic
        self._registry = {"url": registry_url} if registry_url else None
        self._codecs: dict[str, EventCodec] = {}

    def of(self, record: DeadLetter) -> EventCodec:
        topic = record.origin.topic if record.origin else self._default_topic
        codec = self._codecs.get(topic)
        if codec is None:
            codec = self._codecs[topic] = EventCodec(topic, self._registry)
        return codec
