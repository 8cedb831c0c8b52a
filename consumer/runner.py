"""The consume loop: poll, decode, write to the sink, store the offset only after the write.

This is the plain at-least-once pattern of confluent-kafka-python's examples
(``enable.auto.offset.store=false``, offsets stored after processing, committed by the client),
processing one record at a time. Key-ordered concurrency replaces the inner loop later without
changing that contract.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, Final

from confluent_kafka import Consumer, KafkaError, Message

from consumer.deadletter import DeadLetterPublisher, Failure, Stage
from consumer.errors import SinkError, SinkRejectedError
from consumer.settings import ConsumerSettings
from consumer.sink import Sink
from schemas.codec import EventCodec
from schemas.errors import EventDecodeError, EventValidationError

# consume() returns after this long without records, so a stop request is seen within it.
_POLL_TIMEOUT_S: Final = 0.5
_MAX_BATCH: Final = 500
# Backoff for transient sink errors: start small (a blip), cap at the CRM's usual recovery scale.
_BACKOFF_INITIAL_S: Final = 0.1
_BACKOFF_MAX_S: Final = 10.0

_log = logging.getLogger(__name__)


def consumer_config(settings: ConsumerSettings) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "group.id": settings.group_id,
        "partition.assignment.strategy": "cooperative-sticky",
        "enable.auto.offset.store": False,
        "enable.auto.commit": True,
        "auto.commit.interval.ms": 1000,
        "auto.offset.reset": "earliest",
        "client.id": "segstream-consumer",
    }
    if settings.group_instance_id:
        config["group.instance.id"] = settings.group_instance_id
    return config


def record_context(message: Message) -> dict[str, Any]:
    """What every log line about a record carries (never the key: it is a customer id)."""
    headers = dict(message.headers() or [])
    event_id = headers.get("event-id")
    return {
        "topic": message.topic(),
        "partition": message.partition(),
        "offset": message.offset(),
        "event_id": event_id.decode(errors="replace") if isinstance(event_id, bytes) else None,
    }


class SequentialRunner:
    def __init__(
        self,
        settings: ConsumerSettings,
        sink: Sink,
        codec: EventCodec,
        dead_letters: DeadLetterPublisher,
    ) -> None:
        self._settings = settings
        self._sink = sink
        self._codec = codec
        self._dead_letters = dead_letters
        self._consumer = Consumer(consumer_config(settings))
        # Every call into the Consumer happens on this one thread, so rebalance callbacks and
        # offset stores never race each other.
        self._kafka = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kafka-consumer")

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._kafka, self._consumer.subscribe, [self._settings.topic])
        try:
            while not stop.is_set():
                messages = await loop.run_in_executor(
                    self._kafka, self._consumer.consume, _MAX_BATCH, _POLL_TIMEOUT_S
                )
                for message in messages:
                    if stop.is_set():
                        break
                    await self._handle(message, stop)
        finally:
            await loop.run_in_executor(self._kafka, self._consumer.close)
            self._kafka.shutdown()

    async def _handle(self, message: Message, stop: asyncio.Event) -> None:
        error = message.error()
        if error is not None:
            if error.code() != KafkaError._PARTITION_EOF:
                _log.warning("consume error", extra={"reason": error.str()})
            return
        context = record_context(message)
        value = message.value() or b""
        first = datetime.now(UTC)
        try:
            event = self._codec.decode(value)
        except (EventDecodeError, EventValidationError) as exc:
            stage: Stage = "decode" if isinstance(exc, EventDecodeError) else "validate"
            await self._dead_letter(message, Failure(stage, exc, 1, first, first), context)
            return
        attempts = 0
        delay = _BACKOFF_INITIAL_S
        while not stop.is_set():
            attempts += 1
            try:
                await self._sink.write(event)
            except SinkRejectedError as exc:
                failure = Failure("sink", exc, attempts, first, datetime.now(UTC))
                await self._dead_letter(message, failure, context)
                return
            except SinkError as exc:
                wait = getattr(exc, "retry_after", None) or random.uniform(0, delay)
                _log.warning(
                    "sink write failed; retrying",
                    extra={**context, "reason": str(exc), "attempt": attempts, "wait_s": wait},
                )
                # Stopping abandons the retry without storing the offset, so the record is
                # delivered again to whoever owns the partition next.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), wait)
                delay = min(delay * 2, _BACKOFF_MAX_S)
            else:
                _log.info("event written", extra=context)
                await self._store(message)
                return

    async def _dead_letter(
        self, message: Message, failure: Failure, context: dict[str, Any]
    ) -> None:
        await self._dead_letters.send(message, failure)
        _log.warning(
            "record dead-lettered",
            extra={
                **context,
                "stage": failure.stage,
                "error_class": type(failure.error).__name__,
                "reason": str(failure.error)[:300],
            },
        )
        await self._store(message)

    async def _store(self, message: Message) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._kafka, self._consumer.store_offsets, message)
