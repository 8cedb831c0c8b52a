"""A durable Kafka publisher for asyncio: a future per record, resolved by the broker's ack.

``confluent_kafka.aio.AIOProducer`` cannot send record headers (2.16), so this wraps the plain
``Producer``: ``produce()`` is called on the event loop (it only enqueues), a dedicated thread
serves delivery reports with ``poll()``, and each report resolves its asyncio future through
``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from producer_bridge.errors import PublishUnavailableError
from producer_bridge.logs import RepeatFilter
from producer_bridge.settings import BridgeSettings

# The poll thread wakes at least this often to notice shutdown; delivery reports themselves wake it
# at once, so this bounds only the stop latency, not the ack latency.
_POLL_INTERVAL_S: Final = 0.1
# After a fatal error the producer is replaced at once, but not more often than this: a condition
# that stays fatal (the cluster refusing this client's idempotent writes, say) must not make the
# bridge create a producer, and open connections to every broker, several times a second.
_REPLACE_MIN_INTERVAL_S: Final = 5.0
# How long the poll thread serves the dead producer's delivery reports (each an error, so a 503)
# before dropping it; reports still missing then are answered by the request's own expiry timer.
_DEAD_PRODUCER_DRAIN_S: Final = 2.0
_log = logging.getLogger(__name__)
_librdkafka_log = logging.getLogger(f"{__name__}.kafka")
_log.addFilter(RepeatFilter())
_librdkafka_log.addFilter(RepeatFilter())


@dataclass(frozen=True)
class Delivered:
    topic: str
    partition: int
    offset: int


def producer_config(
    bootstrap_servers: str,
    *,
    delivery_timeout_ms: int,
    linger_ms: int,
    queue_max_messages: int = 100_000,
    compression_type: str = "lz4",
    security: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The settings that make a 202 a promise, on the connection ``security`` describes (TLS and
    SASL properties from :meth:`~kafka_config.security.KafkaSecuritySettings.kafka_security_config`;
    secrets in clear, so the result is never logged). The bridge's only Kafka client, the
    producer, is made from this; its readiness check uses that producer too.

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
        "compression.type": compression_type,
        # Bounded local queue: when the broker is gone the queue fills and produce() raises
        # BufferError at once, which becomes a 503, instead of the bridge eating all its memory.
        "queue.buffering.max.messages": queue_max_messages,
        "queue.buffering.max.kbytes": 64 * 1024,
        "client.id": "segstream-bridge",
        **(security or {}),
    }


@dataclass(frozen=True)
class OutgoingRecord:
    key: bytes
    value: bytes
    headers: Sequence[tuple[str, bytes]]


class Publisher(Protocol):
    """What the handlers need from a Kafka producer (a benchmark baseline swaps it out)."""

    async def publish_all(
        self, topic: str, records: Sequence[OutgoingRecord]
    ) -> list[Delivered | PublishUnavailableError]: ...

    def ready(self, topic: str, timeout: float) -> bool: ...

    def queued(self) -> int: ...

    def close(self, timeout: float = 10.0) -> int: ...


class KafkaPublisher:
    """The bridge's producer, with one thread serving its delivery reports.

    **Fatal errors.** An idempotent producer can hit an error it cannot recover from (the broker
    reports an out-of-order sequence, or refuses this producer's id or epoch): librdkafka then
    fails every record, forever, and the application must create a new instance (librdkafka,
    INTRODUCTION.md, "Fatal errors"). The poll thread does: records queued in the dead instance
    are failed (their requests get 503: not known to be stored), ``ready()`` answers False until
    the new instance is in place, and requests are served by it from then on.
    """

    def __init__(self, config: dict[str, Any], *, delivery_wait_s: float = 10.0) -> None:
        self._config = config
        self._fatal: KafkaError | None = None
        self._replaced_at: float | None = None
        self.replacements = 0
        """How many times a fatal error made the publisher replace its producer."""
        self._producer = self._new_producer()
        self._delivery_wait_s = delivery_wait_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reports: list[_Report] = []
        self._reports_lock = threading.Lock()
        self._drain_scheduled = False
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="kafka-delivery", daemon=True)
        self._thread.start()

    async def publish(self, topic: str, record: OutgoingRecord) -> Delivered:
        """Resolve once the broker acknowledged (all in-sync replicas) the record."""
        [delivered] = await self.publish_all(topic, [record])
        if isinstance(delivered, PublishUnavailableError):
            raise delivered
        return delivered

    async def publish_all(
        self, topic: str, records: Sequence[OutgoingRecord]
    ) -> list[Delivered | PublishUnavailableError]:
        """Enqueue every record in order, then wait for each acknowledgement.

        One result per record, in order: where it landed, or why it is not known to be stored.
        Records of one key keep their order (idempotent producer); a record that could not even
        be enqueued fails at once and so does every record after it, so that a later event of a
        customer is never stored while an earlier one is not.
        """
        loop = self._bind(asyncio.get_running_loop())
        futures: list[asyncio.Future[Delivered]] = []
        refused: PublishUnavailableError | None = None
        for record in records:
            future: asyncio.Future[Delivered] = loop.create_future()
            try:
                self._producer.produce(
                    topic,
                    value=record.value,
                    key=record.key,
                    headers=list(record.headers),
                    on_delivery=functools.partial(self._on_delivery, future),
                )
            except BufferError as exc:
                refused = PublishUnavailableError("local produce queue is full")
                refused.__cause__ = exc
                break
            except KafkaException as exc:
                self._note_fatal(exc.args[0])
                refused = PublishUnavailableError(f"produce refused: {exc.args[0]}")
                refused.__cause__ = exc
                break
            futures.append(future)
        results: list[Delivered | PublishUnavailableError] = []
        if futures:
            # librdkafka reports every record within message.timeout.ms; this one timer is only
            # a safety net for a lost report (the record may still land, and dedupes downstream).
            expiry = loop.call_later(self._delivery_wait_s, _expire, futures)
            try:
                for future in futures:
                    try:
                        results.append(await future)
                    except PublishUnavailableError as error:
                        results.append(error)
            finally:
                expiry.cancel()
                for future in futures[len(results) :]:  # only when the request was cancelled
                    future.add_done_callback(_mark_retrieved)
        if refused is not None:
            results.extend([refused] * (len(records) - len(futures)))
        return results

    def queued(self) -> int:
        """Records handed to the producer and not yet acknowledged (or failed)."""
        return len(self._producer)

    def ready(self, topic: str, timeout: float) -> bool:
        """True when the cluster answers metadata for ``topic`` within ``timeout`` and the topic
        exists with partitions: without them nothing the bridge accepts could be stored. False
        while a producer that hit a fatal error waits to be replaced."""
        if self._fatal is not None:
            return False
        try:
            metadata = self._producer.list_topics(topic, timeout=timeout)
        except KafkaException:
            return False
        described = metadata.topics.get(topic)
        return (
            bool(metadata.brokers)
            and described is not None
            and described.error is None
            and bool(described.partitions)
        )

    def close(self, timeout: float = 10.0) -> int:
        """Flush what is queued (their futures settle), stop polling; returns the unsent count."""
        remaining: int = self._producer.flush(timeout)
        self._stopping.set()
        self._thread.join()
        return remaining

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                self._producer.poll(_POLL_INTERVAL_S)
            except KafkaException as exc:
                # confluent-kafka raises a fatal error from poll() (after the error callback):
                # caught, or this thread would die and no request would get an answer again.
                self._note_fatal(exc.args[0])
                if self._fatal is None:
                    _log.exception("Kafka poll failed")
            if self._fatal is not None:
                self._replace_producer()

    def _new_producer(self) -> Producer:
        # librdkafka's own log lines go through Python logging (JSON, like every other line)
        # instead of its raw stderr format; they are emitted from poll(), on the poll thread.
        return Producer({**self._config, "error_cb": self._on_error, "logger": _librdkafka_log})

    def _note_fatal(self, error: Any) -> None:
        if isinstance(error, KafkaError) and error.fatal() and self._fatal is None:
            self._fatal = error
            _log.error(
                "fatal Kafka producer error; replacing the producer",
                extra={"kafka_error": error.name(), "reason": error.str()},
            )

    def _replace_producer(self) -> None:
        """On the poll thread: swap in a new producer, then fail what the dead one still holds."""
        now = time.monotonic()
        if self._replaced_at is not None and now - self._replaced_at < _REPLACE_MIN_INTERVAL_S:
            return
        dead, self._producer = self._producer, self._new_producer()
        self._replaced_at, self._fatal = now, None
        self.replacements += 1
        # Records in the dead instance's queues will never be acknowledged: purge them so their
        # delivery reports (an error each, so a 503 each) arrive now, not at the delivery timeout.
        # A fatal instance may raise its error from these calls too; a report they cannot serve
        # is answered by its request's own expiry timer.
        with contextlib.suppress(KafkaException):
            dead.purge(in_queue=True, in_flight=True)
        with contextlib.suppress(KafkaException):
            dead.flush(_DEAD_PRODUCER_DRAIN_S)
        _log.warning("Kafka producer replaced after a fatal error")

    def _bind(self, loop: asyncio.AbstractEventLoop) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            raise RuntimeError("a KafkaPublisher serves the one event loop it was first used on")
        return loop

    def _on_delivery(
        self, future: asyncio.Future[Delivered], error: KafkaError | None, message: Message
    ) -> None:
        """Runs on the poll (or flushing) thread. Reports are queued and handed to the event
        loop in bursts: one wake-up of the loop per burst, not one per record, which is what
        keeps the acknowledged path close to the speed of the unacknowledged one."""
        if error is not None:
            self._note_fatal(error)
        report = (future, error, message.topic(), message.partition(), message.offset())
        with self._reports_lock:
            self._reports.append(report)
            wake = not self._drain_scheduled
            self._drain_scheduled = True
        if wake and self._loop is not None:
            # A loop already closed (shutdown) has nobody left waiting for the answer.
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._drain_reports)

    def _drain_reports(self) -> None:
        with self._reports_lock:
            reports, self._reports = self._reports, []
            self._drain_scheduled = False
        for report in reports:
            _settle(*report)

    def _on_error(self, error: KafkaError) -> None:
        if error.fatal():
            self._note_fatal(error)
            return
        _log.warning(
            "kafka client error", extra={"kafka_error": error.name(), "reason": error.str()}
        )


_Report = tuple["asyncio.Future[Delivered]", KafkaError | None, str | None, int | None, int | None]


def _expire(futures: Sequence[asyncio.Future[Delivered]]) -> None:
    for future in futures:
        if not future.done():
            future.set_exception(PublishUnavailableError("no acknowledgement in time"))


def _mark_retrieved(future: asyncio.Future[Delivered]) -> None:
    # Nobody awaits this future any more: read its outcome so that asyncio does not log
    # "exception was never retrieved" for a report that arrives later.
    if not future.cancelled():
        future.exception()


def _settle(
    future: asyncio.Future[Delivered],
    error: KafkaError | None,
    topic: str | None,
    partition: int | None,
    offset: int | None,
) -> None:
    if future.done():  # expired, or its request was cancelled; the record still counts
        return
    if error is not None:
        future.set_exception(PublishUnavailableError(f"broker did not acknowledge: {error.str()}"))
    elif topic is None or partition is None or offset is None:
        future.set_exception(PublishUnavailableError("delivery report without a position"))
    else:
        future.set_result(Delivered(topic, partition, offset))


def build_publisher(settings: BridgeSettings) -> KafkaPublisher:
    """The durable producer, configured from the bridge's settings."""
    return KafkaPublisher(
        producer_config(
            settings.kafka_bootstrap_servers,
            delivery_timeout_ms=settings.delivery_timeout_ms,
            linger_ms=settings.linger_ms,
            queue_max_messages=settings.producer_queue_max_messages,
            compression_type=settings.compression_type,
            security=settings.kafka_security_config(),
        ),
        delivery_wait_s=settings.delivery_wait_s,
    )
