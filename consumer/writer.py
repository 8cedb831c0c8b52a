"""How an update is written: the circuit breaker, the rate limit, retries, and giving up.

Errors are sorted by whom they are about (see :mod:`consumer.errors`):

* the message (:class:`SinkRejectedError`) → dead-letter topic, the partition keeps flowing;
  unless rejections come from many different customers in a row, which means the sink is
  unusable (:mod:`consumer.rejections`): the breaker opens and those records wait instead;
* the sink being unwell (:class:`SinkUnavailableError`) → retry with backoff and jitter, blocking
  only this customer's key; after the retry bound → dead-letter topic. The bound counts only
  attempts and time during which the CRM was serving other requests: not time waiting on an open
  breaker, for a rate-limit token, a write slot or the write lease, and no attempt made while the
  breaker was not closed (the probe's included);
* the sink being unusable (:class:`SinkUnusableError`) → the circuit breaker opens, consumption
  pauses, one probe at a time; nothing is dead-lettered for it;
* anything else a write raises (the HTTP client refusing a value, a bug in a sink) → about this
  record: dead-letter topic, stage ``sink``. It never reaches the engine, which would stop.

What is written was decided before (:mod:`consumer.state`); this module only gets it there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Message

from consumer.breaker import BreakerState, CircuitBreaker, Passage
from consumer.deadletter import DeadLetterPublisher, Failure, describe_error
from consumer.errors import SinkRejectedError, SinkUnavailableError, SinkUnusableError
from consumer.metrics import ConsumerMetrics
from consumer.processing.lease import WriteLease
from consumer.ratelimit import GroupRateLimiter
from consumer.rejections import DEFAULT_REJECTION_THRESHOLD, RejectionStreak, Verdict
from consumer.retry import RetryPolicy
from consumer.sink import CustomerUpdate, Sink

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

_log = logging.getLogger(__name__)


class _RetryBudget:
    """How much of the retry bound one record has used, and since when it has been failing."""

    def __init__(self) -> None:
        self.attempts = 0
        self.healthy_time_s = 0.0
        self.first_failure: datetime | None = None

    def failed_once(self) -> None:
        self.first_failure = self.first_failure or datetime.now(UTC)

    def failure(self, error: BaseException, *, counted: bool = False) -> Failure:
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
        rejection_threshold: int = DEFAULT_REJECTION_THRESHOLD,
        rng: random.Random | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._sink = sink
        self._dead_letters = dead_letters
        self._limiter = limiter
        self._breaker = breaker
        self._retry = retry
        self._metrics = metrics
        self._write_slots = asyncio.Semaphore(max_concurrent_writes)
        self._writing: set[tuple[str, int, int]] = set()
        self._rejections = RejectionStreak(rejection_threshold)
        # Set by the engine that drives this writer; without one (unit use) writes are free.
        self.lease: WriteLease | None = None
        self._rng = rng or random.Random()
        self._clock = clock
        self._sleep = sleep

    @property
    def limiter(self) -> GroupRateLimiter:
        return self._limiter

    def is_writing(self, topic: str, partition: int, offset: int) -> bool:
        """True while the record's write is under way: the sink call on the wire, or the
        dead letter or state change that finishes it. A revoke or shutdown lets these finish
        (bounded) and drops records still waiting for anything else."""
        return (topic, partition, offset) in self._writing

    @contextlib.contextmanager
    def finishing(self, message: Message) -> Iterator[None]:
        """Mark the record as writing for the duration (see :meth:`is_writing`)."""
        position = (message.topic() or "", message.partition() or 0, message.offset() or 0)
        self._writing.add(position)
        try:
            yield
        finally:
            self._writing.discard(position)

    async def write(
        self, message: Message, update: CustomerUpdate, context: dict[str, Any]
    ) -> bool:
        """True when written; False when dead-lettered. Never gives up while the sink is down.

        Raises only what the dead-letter topic raises (:class:`consumer.errors.DeadLetterError`)
        and cancellation.
        """
        budget = _RetryBudget()
        while True:
            passage = await self._breaker.wait_until_closed_or_probe()
            self._metrics.limiter_wait.observe(await self._limiter.acquire())
            self._metrics.limiter_rate.set(self._limiter.current_rate_per_s)
            sent_at, error = await self._attempt(message, update)
            spent_s = self._clock() - sent_at
            if error is None:
                self._observe_write("ok", spent_s, None)
                self._breaker.record_success()
                self._rejections.succeeded(sent_at)
                self._limiter.on_success()
                return True
            if isinstance(error, SinkRejectedError):
                self._observe_write("rejected", spent_s, error.status)
                verdict = await self._judge(error, update, passage, sent_at, context)
                if verdict is Verdict.PAYLOAD:
                    budget.failed_once()
                    await self.dead_letter(message, budget.failure(error, counted=True), context)
                    return False
            elif isinstance(error, SinkUnusableError):
                self._observe_write("unusable", spent_s, error.status)
                self._breaker.trip(str(error))
                _log.error("sink unusable; pausing", extra={**context, "reason": str(error)})
            elif isinstance(error, SinkUnavailableError):
                self._observe_write("unavailable", spent_s, error.status)
                counted = passage is Passage.CLOSED
                delay = self._after_unavailable(error, budget, counted, spent_s)
                if delay is None:
                    await self.dead_letter(message, budget.failure(error), context)
                    return False
                _log.warning(
                    "sink write failed; retrying",
                    extra={
                        **context,
                        "reason": str(error),
                        "attempt": budget.attempts,
                        "retry_in_s": round(delay, 3),
                    },
                )
                await self._back_off(delay, budget)
            else:
                # The sink could not even express this update (the HTTP client refused a value,
                # a bug in a sink): about this record, whatever the sink's health.
                self._observe_write("error", spent_s, None)
                _log.error(
                    "sink write raised an unexpected error; dead-lettering the record",
                    extra={**context, "error_class": type(error).__name__},
                )
                budget.failed_once()
                await self.dead_letter(message, budget.failure(error, counted=True), context)
                return False

    async def dead_letter(
        self, message: Message, failure: Failure, context: dict[str, Any]
    ) -> None:
        with self.finishing(message):
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
                "reason": describe_error(failure.error, limit=300),
                "attempts": failure.attempts,
            },
        )

    async def _attempt(
        self, message: Message, update: CustomerUpdate
    ) -> tuple[float, Exception | None]:
        """One call of the sink: (when it was sent, what it raised). A write slot and then the
        lease are waited for first; the clock starts only once the call does.

        The lease is looked at *after* the slot: waiting for a slot can take long, and a process
        frozen during that wait (past its session) must not wake up and send on a lease checked
        before it froze. Slots are as many as the sink's connections, so from here the call is
        on the wire without another wait."""
        async with self._write_slots:
            if self.lease is not None:
                await self.lease.held()
            with self.finishing(message):
                sent_at = self._clock()
                try:
                    await self._sink.write(update)
                except Exception as exc:
                    return sent_at, exc
        return sent_at, None

    async def _judge(
        self,
        error: SinkRejectedError,
        update: CustomerUpdate,
        passage: Passage,
        sent_at: float,
        context: dict[str, Any],
    ) -> Verdict:
        """Wait until the rejection is known to be about the payload or about the sink."""
        verdict = self._rejections.rejected(update.customer_id, sent_at)
        if self._rejections.unusable:
            # Opens a closed breaker, re-opens it when this is the probe; no-op when open.
            self._breaker.trip(
                f"{self._rejections.customers} different customers rejected in a row "
                f"(last: {error})"
            )
        elif passage is Passage.PROBE:
            # The sink answered the probe, and not with "unusable": it works again; whether this
            # payload is bad is for the streak to tell, as for any rejection.
            self._breaker.record_success()
        if not verdict.done():
            _log.info(
                "sink rejected the write; waiting for other customers' writes to tell whether "
                "the payload or the sink is at fault",
                extra={**context, "status": error.status, "streak": self._rejections.customers},
            )
        result = await verdict
        if result is Verdict.SINK:
            _log.warning(
                "write rejected by a sink that rejects every customer; kept for retry",
                extra={**context, "status": error.status},
            )
        return result

    def _after_unavailable(
        self, error: SinkUnavailableError, budget: _RetryBudget, counted: bool, spent_s: float
    ) -> float | None:
        """Seconds to wait before the next attempt, or None when the retry budget is spent.

        ``counted``: the attempt was made through a closed breaker. It still does not count when
        this failure opens the breaker: the failures that open it are the outage's, not this
        record's.
        """
        budget.failed_once()
        if error.status == 429:
            # Throttling says "slower", not "broken": the limiter pauses every call until
            # Retry-After and lowers the rate. It does not count towards the record's bound.
            self._metrics.throttled.inc()
            self._limiter.on_throttled(error.retry_after)
            return 0.0
        self._breaker.record_failure(str(error))
        if counted and self._breaker.state is BreakerState.CLOSED:
            budget.attempts += 1
            budget.healthy_time_s += spent_s
        if self._retry.exhausted(budget.attempts, budget.healthy_time_s):
            return None
        self._metrics.retries.inc()
        return self._retry.delay_with_hint(max(budget.attempts, 1), error.retry_after, self._rng)

    async def _back_off(self, delay_s: float, budget: _RetryBudget) -> None:
        """Sleep ``delay_s``; the time counts towards the budget only if the breaker stayed
        closed all along (the CRM was serving other requests meanwhile)."""
        openings, started = self._breaker.openings, self._clock()
        await self._sleep(delay_s)
        if self._breaker.state is BreakerState.CLOSED and self._breaker.openings == openings:
            budget.healthy_time_s += self._clock() - started

    def _observe_write(self, result: str, spent_s: float, status: int | None) -> None:
        self._metrics.sink_latency.labels(result).observe(spent_s)
        if result != "ok":
            self._metrics.sink_errors.labels(result, str(status or "none")).inc()
