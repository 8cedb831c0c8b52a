"""The dead-letter topic: the original record, unchanged, plus headers saying what went wrong."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from confluent_kafka import Message

from consumer.clients import KafkaClients
from consumer.errors import DeadLetterError
from consumer.producing import AcknowledgedProducer, Headers
from schemas.topics import (
    DLQ_HEADER_PREFIX,
    HEADER_DLQ_ATTEMPTS,
    HEADER_DLQ_ERROR_CLASS,
    HEADER_DLQ_ERROR_MESSAGE,
    HEADER_DLQ_FIRST_FAILURE,
    HEADER_DLQ_GROUP,
    HEADER_DLQ_LAST_FAILURE,
    HEADER_DLQ_OFFSET,
    HEADER_DLQ_PARTITION,
    HEADER_DLQ_STAGE,
    HEADER_DLQ_TIMESTAMP,
    HEADER_DLQ_TOPIC,
)

Stage = Literal["decode", "validate", "sink"]


@dataclass(frozen=True)
class Failure:
    stage: Stage
    error: BaseException
    attempts: int
    first_failure: datetime
    last_failure: datetime


def dead_letter_headers(message: Message, failure: Failure, group_id: str) -> Headers:
    """The record's own headers, then the context headers (all under :data:`DLQ_HEADER_PREFIX`).

    A record that was dead-lettered before (and replayed) arrives with the old context headers:
    they are dropped and replaced by this failure's, so a record carries one context, never a
    pile of them. Its history is in ``segstream.replay.count`` and the replay provenance headers.
    """
    timestamp_type, timestamp = message.timestamp()
    context = {
        HEADER_DLQ_TOPIC: message.topic(),
        HEADER_DLQ_PARTITION: message.partition(),
        HEADER_DLQ_OFFSET: message.offset(),
        HEADER_DLQ_TIMESTAMP: timestamp if timestamp_type else None,
        HEADER_DLQ_STAGE: failure.stage,
        HEADER_DLQ_ERROR_CLASS: type(failure.error).__name__,
        HEADER_DLQ_ERROR_MESSAGE: str(failure.error)[:1000],
        HEADER_DLQ_ATTEMPTS: failure.attempts,
        HEADER_DLQ_FIRST_FAILURE: failure.first_failure.isoformat(timespec="milliseconds"),
        HEADER_DLQ_LAST_FAILURE: failure.last_failure.isoformat(timespec="milliseconds"),
        HEADER_DLQ_GROUP: group_id,
    }
    raw = message.headers() or []
    items = raw.items() if isinstance(raw, dict) else raw
    original: Headers = [(k, v) for k, v in items if not k.startswith(DLQ_HEADER_PREFIX)]
    added: Headers = [(k, str(v).encode()) for k, v in context.items() if v is not None]
    return [*original, *added]


class DeadLetterPublisher:
    """Awaits the broker's ack for every dead letter: the source offset moves only after it."""

    def __init__(
        self, clients: KafkaClients, topic: str, group_id: str, *, delivery_timeout_ms: int
    ) -> None:
        self._topic = topic
        self._group_id = group_id
        self._producer = AcknowledgedProducer(
            clients,
            client_id="segstream-consumer-dlq",
            delivery_timeout_ms=delivery_timeout_ms,
            error=lambda reason: DeadLetterError(
                f"dead-letter topic did not acknowledge: {reason}"
            ),
        )

    async def send(self, message: Message, failure: Failure) -> None:
        await self._producer.produce(
            self._topic,
            key=message.key(),
            value=message.value(),
            headers=dead_letter_headers(message, failure, self._group_id),
        )

    def close(self, timeout: float = 10.0) -> None:
        self._producer.close(timeout)
