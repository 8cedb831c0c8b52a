"""A durable Kafka publisher for asyncio: a future per record, resolved by the broker's ack.

``confluent_kafka.aio.AIOProducer`` cannot send record headers (2.16), so this wraps the plain
``Producer``: ``produce()`` is called on the event loop (it only enqueues), a dedicated thread
serves delivery reports with ``poll()``, and each report resolves its asyncio future through
``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from producer_bridge.errors import PublishUnavailableError

# The poll thread wakes at least this often to notice shutdown; delivery reports themselves wake it
# at once, so this bounds only the stop latency, not the ack latency.
_POLL_INTERVAL_S: Final = 0.1
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Delivered:
    topic: str
    partition: int
    offset: int


def producer_config(
    bootstrap_servers: str, *, delivery_timeout_ms: int, linger_ms: int
) -> dict[str, Any]:
    """The settings that make a 202 a promise.

    ``enable.idempotence`` implies ``acks=all``, ``max.in.flight<=5`` and unbounded internal
    retries within ``message.timeout.ms``: a retried batch is never written twice nor reordered.
    ``acks=all`` is spelled out anyway so nobody "optimises" it away.
    """
    return {
        "bootstrap.servers": bootstrap_servers,
        "enable.idempotence": True,
        "acks": "all",
        "message.timeout.ms": delivery_timeout_ms,
        "linger.ms": linger_ms,
        "compression.type": "lz4",
        # Bounded local queue: when the broker is gone the queue fills and produce() raises
        # BufferError at once, which becomes a 503, instead of the bridge eating all its memory.
        "queue.buffering.max.messages": 100_000,
        "queue.buffering.max.kbytes": 64 * 1024,
        "client.id": "segstream-bridge",
    }


class KafkaPublisher:
    def __init__(self, config: dict[str, Any]) -> None:
        self._producer = Producer({**config, "error_cb": self._on_error})
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="kafka-delivery", daemon=True)
        self._thread.start()

    async def publish(
        self,
        topic: str,
        key: bytes,
        value: bytes,
        headers: Sequence[tuple[str, bytes]],
    ) -> Delivered:
        """Resolve once the broker acknowledged (all in-sync replicas) the record."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Delivered] = loop.create_future()

        def on_delivery(error: KafkaError | None, message: Message) -> None:
            loop.call_soon_threadsafe(_settle, future, error, message)

        try:
            self._producer.produce(
                topic, value=value, key=key, headers=list(headers), on_delivery=on_delivery
            )
        except BufferError as exc:
            raise PublishUnavailableError("local produce queue is full") from exc
        except KafkaException as exc:
            raise PublishUnavailableError(f"produce refused: {exc.args[0]}") from exc
        return await future

    def ready(self, timeout: float) -> bool:
        """True when the cluster answers a metadata request for anything within ``timeout``."""
        try:
            metadata = self._producer.list_topics(timeout=timeout)
        except KafkaException:
            return False
        return bool(metadata.brokers)

    def close(self, timeout: float = 10.0) -> int:
        """Flush what is queued (their futures settle), stop polling; returns the unsent count."""
        remaining: int = self._producer.flush(timeout)
        self._stopping.set()
        self._thread.join()
        return remaining

    def _serve(self) -> None:
        while not self._stopping.is_set():
            self._producer.poll(_POLL_INTERVAL_S)

    @staticmethod
    def _on_error(error: KafkaError) -> None:
        _log.warning(
            "kafka client error", extra={"kafka_error": error.name(), "reason": error.str()}
        )


def _settle(future: asyncio.Future[Delivered], error: KafkaError | None, message: Message) -> None:
    if future.done():  # the request was cancelled (client went away); the record still counts
        return
    topic, partition, offset = message.topic(), message.partition(), message.offset()
    if error is not None:
        future.set_exception(PublishUnavailableError(f"broker did not acknowledge: {error.str()}"))
    elif topic is None or partition is None or offset is None:
        future.set_exception(PublishUnavailableError("delivery report without a position"))
    else:
        future.set_result(Delivered(topic, partition, offset))
