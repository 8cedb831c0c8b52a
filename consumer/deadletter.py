"""The dead-letter topic: the original record, unchanged, plus headers saying what went wrong."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from confluent_kafka import KafkaError, Message, Producer

from consumer.errors import DeadLetterError
from schemas.topics import DLQ_HEADER_PREFIX

Stage = Literal["decode", "validate", "sink"]


@dataclass(frozen=True)
class Failure:
    stage: Stage
    error: BaseException
    attempts: int
    first_failure: datetime
    last_failure: datetime


Headers = list[tuple[str, str | bytes | None]]


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
        self, bootstrap_servers: str, topic: str, group_id: str, *, delivery_timeout_ms: int
    ) -> None:
        self._topic = topic
        self._group_id = group_id
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap_servers,
                "enable.idempotence": True,
                "acks": "all",
                "message.timeout.ms": delivery_timeout_ms,
                "client.id": "segstream-consumer-dlq",
            }
        )
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="dlq-delivery", daemon=True)
        self._thread.start()

    async def send(self, message: Message, failure: Failure) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def on_delivery(error: KafkaError | None, _: Any) -> None:
            loop.call_soon_threadsafe(_settle, done, error)

        self._producer.produce(
            self._topic,
            key=message.key(),
            value=message.value(),
            headers=dead_letter_headers(message, failure, self._group_id),
            on_delivery=on_delivery,
        )
        await done

    def _serve(self) -> None:
        while not self._stopping.is_set():
            self._producer.poll(0.1)

    def close(self, timeout: float = 10.0) -> None:
        self._producer.flush(timeout)
        self._stopping.set()
        self._thread.join()


def _settle(done: asyncio.Future[None], error: KafkaError | None) -> None:
    if done.done():
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(DeadLetterError(f"dead-letter topic did not acknowledge: {error.str()}"))
