"""What happens to one record: decode, dedupe, rate-limit, write with retries, or dead-letter.

Errors are sorted by whom they are about (see :mod:`consumer.errors`):

* the message → dead-letter topic at once, the partition keeps flowing;
* the sink being unwell → retry with backoff and jitter, blocking only this customer's key; after
  the retry bound (counted only while the sink is otherwise healthy) → dead-letter topic;
* the sink being unusable → the circuit breaker opens, consumption pauses, one probe at a time;
  nothing is dead-lettered for it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Message

from consumer.breaker import CircuitBreaker
from consumer.deadletter import DeadLetterPublisher, Failure, Stage
from consumer.dedupe import DedupeIndex, DedupeRebuildError, rebuild_partition
from consumer.errors import SinkRejectedError, SinkUnavailableError, SinkUnusableError
from consumer.metrics import ConsumerMetrics
from consumer.processing.lease import WriteLease
from consumer.ratelimit import GroupRateLimiter
from consumer.retry import RetryPolicy
from consumer.sink import Sink
from schemas.codec import EventCodec
from schemas.errors import EventDecodeError, EventValidationError
from schemas.model import InteractionCompleted
from schemas.topics import HEADER_EVENT_ID, HEADER_REPLAY_COUNT

_log = logging.getLogger(__name__)


def header_value(message: Message, name: str) -> bytes | None:
    raw = message.headers() or []
    items = raw.items() if isinstance(raw, dict) else raw
    for key, value in items:
        if key == name:
            return value.encode() if isinstance(value, str) else value
    return None


def record_context(message: Message) -> dict[str, Any]:
    """What every log line about a record carries. Never the key: it is a customer id."""
    event_id = header_value(message, HEADER_EVENT_ID)
    return {
        "topic": message.topic(),
        "partition": message.partition(),
        "offset": message.offset(),
        "event_id": event_id.decode(errors="replace") if event_id is not None else None,
    }


def record_timestamp_ms(message: Message) -> int:
    kind, timestamp = message.timestamp()
    return timestamp if kind and timestamp > 0 else int(time.time() * 1000)


class _RetryBudget:
    """How much of the retry bound one record has used, and since when it has been failing."""

    def __init__(self) -> None:
        self.attempts = 0
        self.healthy_time_s = 0.0
        self.first_failure: datetime | None = None

    def failed_once(self) -> None:
        self.first_failure = self.first_failure or datetime.now(UTC)

    def count(self, spent_s: float) -> None:
        self.attempts += 1
        self.healthy_time_s += spent_s

    def failure(self, error: Exception, *, counted: bool = False) -> Failure:
        now = datetime.now(UTC)
        attempts = self.attempts + 1 if counted else self.attempts
        return Failure("sink", error, max(attempts, 1), self.first_failure or now, now)


class RecordProcessor:
    """The :class:`consumer.processing.engine.RecordHandler` that writes to a sink."""

    def __init__(
        self,
        *,
        codec: EventCodec,
        sink: Sink,
        dead_letters: DeadLetterPublisher,
        dedupe: DedupeIndex,
        limiter: GroupRateLimiter,
        breaker: CircuitBreaker,
        retry: RetryPolicy,
        metrics: ConsumerMetrics,
        bootstrap_servers: str,
        dedupe_ttl_s: float,
        max_concurrent_writes: int,
        rng: random.Random | None = None,
    ) -> None:
        self._codec = codec
        self._sink = sink
        self._dead_letters = dead_letters
        self._dedupe = dedupe
        self._limiter = limiter
        self._breaker = breaker
        self._retry = retry
        self._metrics = metrics
        self._bootstrap_servers = bootstrap_servers
        self._dedupe_ttl_s = dedupe_ttl_s
        self._write_slots = asyncio.Semaphore(max_concurrent_writes)
        self._writing: set[tuple[str, int, int]] = set()
        # Set by the engine that drives this processor; without one (unit use) writes are free.
        self.lease: WriteLease | None = None
        self._rng = rng or random.Random()

    # RecordHandler ---------------------------------------------------------------------------

    async def handle(self, message: Message) -> None:
        context = record_context(message)
        topic, partition = message.topic() or "", message.partition() or 0
        try:
            event = self._codec.decode(message.value() or b"")
        except (EventDecodeError, EventValidationError) as exc:
            stage: Stage = "decode" if isinstance(exc, EventDecodeError) else "validate"
            now = datetime.now(UTC)
            await self._dead_letter(message, Failure(stage, exc, 1, now, now), context)
            return
        context["event_id"] = event.event_id
        replayed = header_value(message, HEADER_REPLAY_COUNT) is not None
        now_ms = int(time.time() * 1000)
        if not replayed and self._dedupe.is_duplicate(topic, partition, event.event_id, now_ms):
            self._metrics.dedupe_hits.inc()
            self._metrics.records.labels("duplicate").inc()
            _log.debug("duplicate skipped", extra=context)
            return
        written = await self._write(message, event, context)
        self._dedupe.remember(topic, partition, event.event_id, record_timestamp_ms(message))
        if written:
            self._metrics.records.labels("written").inc()
            age = (datetime.now(UTC) - event.completed_at).total_seconds()
            self._metrics.event_age.observe(max(age, 0.0))
            # DEBUG: at thousands of events per second a line per success costs more CPU than
            # the rest of the pipeline and tells nothing the metrics do not; failures, dead
            # letters and state changes are logged at INFO and above.
            _log.debug("event written", extra=context)

    async def prepare_partition(self, topic: str, partition: int, committed: int | None) -> None:
        """Rebuild the partition's recent event ids from the partition itself (dedupe across
        restarts and rebalances without an external store)."""
        if committed is None or committed <= 0:
            return
        since_ms = int((time.time() - self._dedupe_ttl_s) * 1000)
        started = time.monotonic()
        try:
            seen = await asyncio.to_thread(
                rebuild_partition,
                self._bootstrap_servers,
                topic,
                partition,
                until_offset=committed,
                since_ms=since_ms,
                codec=self._codec,
            )
        except DedupeRebuildError as exc:
            # Part of the history is better than none; the CRM's Idempotency-Key covers the rest.
            _log.warning(
                "dedupe history incomplete",
                extra={
                    "topic": topic,
                    "partition": partition,
                    "reason": str(exc),
                    "event_ids": len(exc.partial),
                },
            )
            seen = exc.partial
        self._dedupe.load_partition(topic, partition, seen)
        _log.info(
            "dedupe history rebuilt",
            extra={
                "topic": topic,
                "partition": partition,
                "event_ids": len(seen),
                "until_offset": committed,
                "seconds": round(time.monotonic() - started, 3),
            },
        )

    def assignment_changed(self, assigned: int, total: int) -> None:
        self._limiter.set_share(assigned, total)
        self._metrics.assigned.set(assigned)
        self._metrics.limiter_rate.set(self._limiter.current_rate_per_s)

    def is_writing(self, topic: str, partition: int, offset: int) -> bool:
        return (topic, partition, offset) in self._writing

    def partition_dropped(self, topic: str, partition: int) -> None:
        self._dedupe.drop_partition(topic, partition)
        self._metrics.forget_partition(topic, partition)

    # writing ------------------------------------------------------------------------------

    async def _write(
        self, message: Message, event: InteractionCompleted, context: dict[str, Any]
    ) -> bool:
        """True when written; False when dead-lettered. Never gives up while the sink is down."""
        retries = _RetryBudget()
        while True:
            gate_started = time.monotonic()
            await self._breaker.wait_until_closed_or_probe()
            self._metrics.limiter_wait.observe(await self._limiter.acquire())
            self._metrics.limiter_rate.set(self._limiter.current_rate_per_s)
            started = time.perf_counter()
            try:
                await self._send(message, event)
            except SinkRejectedError as exc:
                self._observe_write("rejected", started, exc.status)
                self._breaker.record_success()  # it answered: it is healthy, the payload is not
                await self._dead_letter(message, retries.failure(exc, counted=True), context)
                return False
            except SinkUnusableError as exc:
                self._observe_write("unusable", started, exc.status)
                self._breaker.trip(str(exc))
                _log.error("sink unusable; pausing", extra={**context, "reason": str(exc)})
            except SinkUnavailableError as exc:
                self._observe_write("unavailable", started, exc.status)
                delay = self._after_unavailable(exc, retries, time.monotonic() - gate_started)
                if delay is None:
                    await self._dead_letter(message, retries.failure(exc), context)
                    return False
                _log.warning(
                    "sink write failed; retrying",
                    extra={
                        **context,
                        "reason": str(exc),
                        "attempt": retries.attempts,
                        "retry_in_s": round(delay, 3),
                    },
                )
                await asyncio.sleep(delay)
            else:
                self._observe_write("ok", started, None)
                self._breaker.record_success()
                self._limiter.on_success()
                return True

    async def _send(self, message: Message, event: InteractionCompleted) -> None:
        position = (message.topic() or "", message.partition() or 0, message.offset() or 0)
        if self.lease is not None:
            await self.lease.held()
        async with self._write_slots:
            self._writing.add(position)
            try:
                await self._sink.write(event)
            finally:
                self._writing.discard(position)

    def _after_unavailable(
        self, error: SinkUnavailableError, retries: _RetryBudget, spent_s: float
    ) -> float | None:
        """Seconds to wait before the next attempt, or None when the retry budget is spent."""
        retries.failed_once()
        if error.status == 429:
            # Throttling says "slower", not "broken": the limiter pauses every call until
            # Retry-After and lowers the rate. It does not count towards the record's bound.
            self._metrics.throttled.inc()
            self._limiter.on_throttled(error.retry_after)
            return 0.0
        breaker_was_closed = self._breaker.state == "closed"
        self._breaker.record_failure()
        if breaker_was_closed and self._breaker.state == "closed":
            # Only failures while the CRM serves others are this record's problem; during an
            # outage the breaker opens and no attempt is counted.
            retries.count(spent_s)
        if self._retry.exhausted(retries.attempts, retries.healthy_time_s):
            return None
        self._metrics.retries.inc()
        return self._retry.delay_with_hint(max(retries.attempts, 1), error.retry_after, self._rng)

    def _observe_write(self, result: str, started: float, status: int | None) -> None:
        self._metrics.sink_latency.labels(result).observe(time.perf_counter() - started)
        if result != "ok":
            self._metrics.sink_errors.labels(result, str(status or "none")).inc()

    async def _dead_letter(
        self, message: Message, failure: Failure, context: dict[str, Any]
    ) -> None:
        await self._dead_letters.send(message, failure)
        reason = type(failure.error).__name__
        self._metrics.dead_letters.labels(failure.stage, reason).inc()
        self._metrics.records.labels("dead_lettered").inc()
        _log.warning(
            "record dead-lettered",
            extra={
                **context,
                "stage": failure.stage,
                "error_class": reason,
                "reason": str(failure.error)[:300],
                "attempts": failure.attempts,
            },
        )
