"""How an update is written: the circuit breaker, the rate limit, retries, and giving up.

Errors are sorted by whom they are about (see :mod:`consumer.errors`):

* the message → dead-letter topic at once, the partition keeps flowing;
* the sink being unwell → retry with backoff and jitter, blocking only this customer's key; after
  the retry bound (counted only while the sink is otherwise healthy) → dead-letter topic;
* the sink being unusable → the circuit breaker opens, consumption pauses, one probe at a time;
  nothing is dead-lettered for it.

What is written was decided before (:mod:`consumer.state`); this module only gets it there.
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
from consumer.deadletter import DeadLetterPublisher, Failure
from consumer.errors import SinkRejectedError, SinkUnavailableError, SinkUnusableError
from consumer.metrics import ConsumerMetrics
from consumer.processing.lease import WriteLease
from consumer.ratelimit import GroupRateLimiter
from consumer.retry import RetryPolicy
from consumer.sink import CustomerUpdate, Sink

_log = logging.getLogger(__name__)


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


class SinkWriter:
    """Writes one update at a time per customer, any number of customers at once."""

    def __init__(
        self,
        *,
        sink: Sink,
        dead_letters: DeadLetterPublisher,
        limiter: GroupRateLimiter,
        breaker: CircuitBreaker,
        retry: RetryPolicy,
        metrics: ConsumerMetrics,
        max_concurrent_writes: int,
        rng: random.Random | None = None,
    ) -> None:
        self._sink = sink
        self._dead_letters = dead_letters
        self._limiter = limiter
        self._breaker = breaker
        self._retry = retry
        self._metrics = metrics
        self._write_slots = asyncio.Semaphore(max_concurrent_writes)
        self._writing: set[tuple[str, int, int]] = set()
        # Set by the engine that drives this writer; without one (unit use) writes are free.
        self.lease: WriteLease | None = None
        self._rng = rng or random.Random()

    @property
    def limiter(self) -> GroupRateLimiter:
        return self._limiter

    def is_writing(self, topic: str, partition: int, offset: int) -> bool:
        return (topic, partition, offset) in self._writing

    async def write(
        self, message: Message, update: CustomerUpdate, context: dict[str, Any]
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
                await self._send(message, update)
            except SinkRejectedError as exc:
                self._observe_write("rejected", started, exc.status)
                self._breaker.record_success()  # it answered: it is healthy, the payload is not
                await self.dead_letter(message, retries.failure(exc, counted=True), context)
                return False
            except SinkUnusableError as exc:
                self._observe_write("unusable", started, exc.status)
                self._breaker.trip(str(exc))
                _log.error("sink unusable; pausing", extra={**context, "reason": str(exc)})
            except SinkUnavailableError as exc:
                self._observe_write("unavailable", started, exc.status)
                delay = self._after_unavailable(exc, retries, time.monotonic() - gate_started)
                if delay is None:
                    await self.dead_letter(message, retries.failure(exc), context)
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

    async def dead_letter(
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

    async def _send(self, message: Message, update: CustomerUpdate) -> None:
        position = (message.topic() or "", message.partition() or 0, message.offset() or 0)
        if self.lease is not None:
            await self.lease.held()
        async with self._write_slots:
            self._writing.add(position)
            try:
                await self._sink.write(update)
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
