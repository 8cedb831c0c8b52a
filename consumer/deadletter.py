"""The dead-letter topic: the original record, unchanged, plus headers saying what went wrong."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from confluent_kafka import Message

from consumer.clients import KafkaClients
from consumer.errors import DeadLetterError
from consumer.producing import AcknowledgedProducer, Headers
from schemas.topics import DLQ_HEADER_PREFIX

Stage = Literal["decode", "validate", "sink"]


@dataclass(frozen=True)
class Failure:
    stage: Stage
    error: BaseException
    attempts: int
    first_failure: datetime
    last_failure: datetime


def dead_letter_headers(message: Message, failure: Failure, group_id: str) -> Headers:
    """Context headers, each under :data:`DLQ_HEADER_PREFIX`, after the original headers."""
    timestamp_type, timestamp = message.timestamp()
    context = {
        "topic": message.topic(),
        "partition": message.partition(),
        "offset": message.offset(),
        "timestamp": timestamp if timestamp_type else None,
        "stage": failure.stage,
        "error.class": type(failure.error).__name__,
        "error.message": str(failure.error)[:1000],
        "attempts": failure.attempts,
        "first.failure": failure.first_failure.isoformat(timespec="milliseconds"),
        "last.failure": failure.last_failure.isoformat(timespec="milliseconds"),
        "group": group_id,
    }
    raw = message.headers() or []
    original: Headers = list(raw.items()) if isinstance(raw, dict) else list(raw)
    added: Headers = [
        (DLQ_HEADER_PREFIX + k, str(v).encode()) for k, v in context.items() if v is not None
    ]
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
