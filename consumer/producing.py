"""A producer whose every record is awaited until the broker has it (``acks=all``, idempotent).

The consumer writes to Kafka in two places, the dead-letter topic and the customer-state
changelog, and in both a record must be acknowledged before the source offset may move past the
record that caused it. One background thread serves delivery reports; each ``produce`` gets an
asyncio future settled from it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any, Final

from confluent_kafka import KafkaError, KafkaException

from consumer.clients import KafkaClients
from consumer.errors import ConsumerError

Headers = list[tuple[str, str | bytes | None]]
ErrorFactory = Callable[[str], ConsumerError]

# A record larger than the producer's message.max.bytes (refused by produce() itself), or than
# the topic's max.message.bytes (refused by the broker): the same bytes can never succeed.
TOO_LARGE: Final = frozenset({KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.RECORD_LIST_TOO_LARGE})

_log = logging.getLogger(__name__)


class AcknowledgedProducer:
    def __init__(
        self,
        clients: KafkaClients,
        *,
        client_id: str,
        delivery_timeout_ms: int,
        error: ErrorFactory,
        too_large: ErrorFactory | None = None,
        extra_config: Mapping[str, Any] | None = None,
    ) -> None:
        """``error`` builds the exception a failed delivery raises (the caller's own kind) from
        the broker's or the client's reason; ``too_large`` (default: ``error``) the one for a
        record too large to be taken (:data:`TOO_LARGE`)."""
        self._error = error
        self._too_large = too_large or error
        self._producer = clients.producer(
            client_id,
            {
                **(extra_config or {}),
                "enable.idempotence": True,
                "acks": "all",
                "message.timeout.ms": delivery_timeout_ms,
            },
        )
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"{client_id}-acks", daemon=True)
        self._thread.start()

    async def produce(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None = None,
        partition: int | None = None,
    ) -> None:
        """Return once the broker acknowledged; raise the caller's error when it did not."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def on_delivery(error: KafkaError | None, _: Any) -> None:
            loop.call_soon_threadsafe(self._settle, done, error)

        self._send(
            topic, key=key, value=value, headers=headers, partition=partition, on=on_delivery
        )
        await done

    def produce_nowait(
        self, topic: str, *, key: bytes | None, value: bytes | None, partition: int | None = None
    ) -> None:
        """Fire and forget: a failed delivery is logged, nobody waits for it."""

        def on_delivery(error: KafkaError | None, _: Any) -> None:
            if error is not None:
                _log.warning(
                    "record not acknowledged", extra={"topic": topic, "reason": error.str()}
                )

        self._send(topic, key=key, value=value, headers=None, partition=partition, on=on_delivery)

    def _send(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None,
        partition: int | None,
        on: Callable[[KafkaError | None, Any], None],
    ) -> None:
        kwargs: dict[str, Any] = {"key": key, "value": value, "on_delivery": on}
        if headers:
            kwargs["headers"] = headers
        if partition is not None:
            kwargs["partition"] = partition
        try:
            self._producer.produce(topic, **kwargs)
        except BufferError:
            # The local queue is full (the broker has been away for long): wait for room rather
            # than fail a record that is only waiting its turn.
            self._producer.flush(1.0)
            self._producer.produce(topic, **kwargs)
        except KafkaException as exc:
            raise self._failure(exc.args[0], f"cannot produce to {topic}: {exc}") from exc

    def _settle(self, done: asyncio.Future[None], error: KafkaError | None) -> None:
        if done.done():
            return
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(self._failure(error, error.str()))

    def _failure(self, error: object, reason: str) -> ConsumerError:
        too_large = isinstance(error, KafkaError) and error.code() in TOO_LARGE
        return (self._too_large if too_large else self._error)(reason)

    def _serve(self) -> None:
        while not self._stopping.is_set():
            self._producer.poll(0.1)

    def close(self, timeout: float = 10.0) -> None:
        self._producer.flush(timeout)
        self._stopping.set()
        self._thread.join()
