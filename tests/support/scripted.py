"""A sink that answers from a script, and a SinkWriter wired to it on the fake clock.

For unit tests of what the consumer decides (retry, back off, dead-letter, open the breaker,
wait for the limiter) without a CRM and without waiting: every wait is on :class:`FakeTime`.
"""

from __future__ import annotations

import random
from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from confluent_kafka import Message
from prometheus_client import CollectorRegistry

from consumer.breaker import CircuitBreaker
from consumer.clients import KafkaClients
from consumer.deadletter import DeadLetterPublisher
from consumer.dedupe import DedupeIndex
from consumer.errors import SinkRejectedError, SinkUnavailableError, SinkUnusableError
from consumer.metrics import ConsumerMetrics
from consumer.pipeline import RecordProcessor
from consumer.ratelimit import GroupRateLimiter
from consumer.retry import RetryPolicy
from consumer.sink import CustomerUpdate
from consumer.state import CustomerStates
from consumer.writer import SinkWriter
from schemas.codec import EventCodec
from support.clock import FakeTime
from support.pipeline import TOPIC, WEEK_MS, MemoryChangelog, RecordingDeadLetters


@dataclass(frozen=True)
class Hang:
    """The CRM does not answer: the call ends after ``seconds`` with the client's timeout."""

    seconds: float = 5.0


Step = BaseException | Hang | None  # None: the write succeeds

OK: Step = None


def server_error(status: int = 503, retry_after: float | None = None) -> SinkUnavailableError:
    return SinkUnavailableError(f"CRM answered {status}", status=status, retry_after=retry_after)


def rejected(status: int = 422) -> SinkRejectedError:
    return SinkRejectedError(f"CRM rejected the payload ({status})", status=status)


def unauthorized() -> SinkUnusableError:
    return SinkUnusableError("CRM refused our credentials (401)", status=401)


@dataclass
class Call:
    at: float
    customer_id: str
    event_id: str
    answered_at: float | None = None
    outcome: str = ""


@dataclass
class ScriptedSink:
    """Each write of a customer takes the next step of that customer's script; when it runs out,
    ``default`` answers (success unless set). Every call takes ``latency_s`` of fake time."""

    clock: FakeTime
    scripts: dict[str, deque[Step]] = field(default_factory=lambda: defaultdict(deque))
    default: Step = None
    latency_s: float = 0.01
    calls: list[Call] = field(default_factory=list)

    def script(self, customer_id: str, *steps: Step) -> None:
        self.scripts[customer_id].extend(steps)

    async def write(self, update: CustomerUpdate) -> None:
        call = Call(self.clock.now, update.customer_id, update.event_id)
        self.calls.append(call)
        queue = self.scripts.get(update.customer_id)
        step = queue.popleft() if queue else self.default
        await self.clock.sleep(self.latency_s)
        if isinstance(step, Hang):
            await self.clock.sleep(step.seconds)
            step = SinkUnavailableError(f"CRM did not answer within {step.seconds}s")
        call.answered_at = self.clock.now
        call.outcome = "ok" if step is None else type(step).__name__
        if step is not None:
            raise step

    async def close(self) -> None:
        return None

    def calls_of(self, customer_id: str) -> list[Call]:
        return [c for c in self.calls if c.customer_id == customer_id]


@dataclass
class WriterUnderTest:
    writer: SinkWriter
    sink: ScriptedSink
    breaker: CircuitBreaker
    limiter: GroupRateLimiter
    dead_letters: RecordingDeadLetters
    metrics: ConsumerMetrics
    clock: FakeTime

    def dead_lettered(self) -> list[str]:
        """Event ids (the ``event-id`` header) of the records sent to the dead-letter topic."""
        return [dict(m.headers() or [])["event-id"].decode() for m, _ in self.dead_letters.letters]

    def counter(self, name: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(name, labels or None)
        return 0.0 if value is None else value


def writer_under_test(
    clock: FakeTime,
    *,
    retry: RetryPolicy | None = None,
    rejection_threshold: int = 20,
    failure_threshold: int = 5,
    breaker_open_s: float = 1.0,
    rate_per_s: float = 0.0,
    burst: int = 1,
    max_concurrent_writes: int = 100,
) -> WriterUnderTest:
    metrics = ConsumerMetrics(CollectorRegistry())
    sink = ScriptedSink(clock)
    breaker = CircuitBreaker(
        failure_threshold,
        breaker_open_s,
        max(breaker_open_s, 30.0),
        clock=clock,
        sleep=clock.sleep,
    )
    limiter = GroupRateLimiter(rate_per_s, burst, clock=clock, sleep=clock.sleep)
    limiter.set_share(1, 1)
    dead_letters = RecordingDeadLetters()
    writer = SinkWriter(
        sink=sink,
        dead_letters=cast(DeadLetterPublisher, dead_letters),
        limiter=limiter,
        breaker=breaker,
        retry=retry or RetryPolicy(),
        metrics=metrics,
        max_concurrent_writes=max_concurrent_writes,
        rejection_threshold=rejection_threshold,
        rng=random.Random(7),
        clock=clock,
        sleep=clock.sleep,
    )
    return WriterUnderTest(writer, sink, breaker, limiter, dead_letters, metrics, clock)


_offsets: dict[int, int] = defaultdict(int)


def update_for(customer_id: str, event_id: str) -> tuple[Message, CustomerUpdate]:
    """A record and the update the pipeline would have decided for it."""
    offset = _offsets[0]
    _offsets[0] += 1
    message = Message(
        topic=TOPIC,
        partition=0,
        offset=offset,
        key=customer_id.encode(),
        value=b"\xc3\x01",
        headers=[("event-id", event_id.encode())],
        timestamp=(1, 1_764_000_000_000),
    )
    update = CustomerUpdate(
        customer_id=customer_id,
        attributes={"last_interaction_summary": event_id},
        last_updated=datetime(2026, 11, 28, 10, 0, tzinfo=UTC),
        idempotency_key=event_id,
        event_id=event_id,
    )
    return message, update


async def write(under_test: WriterUnderTest, customer_id: str, event_id: str) -> bool:
    message, update = update_for(customer_id, event_id)
    return await under_test.writer.write(message, update, {"event_id": event_id})


@dataclass
class ProcessorUnderTest:
    processor: RecordProcessor
    writer: WriterUnderTest
    states: CustomerStates
    changelog: MemoryChangelog


def processor_under_test(clock: FakeTime, **writer_options: Any) -> ProcessorUnderTest:
    """The real RecordProcessor around :func:`writer_under_test`, its state in memory."""
    under_test = writer_under_test(clock, **writer_options)
    changelog = MemoryChangelog()
    states = CustomerStates(changelog, retention_ms=WEEK_MS, max_customers_per_partition=1000)
    processor = RecordProcessor(
        codec=EventCodec(TOPIC),
        writer=under_test.writer,
        states=states,
        dedupe=DedupeIndex(),
        metrics=under_test.metrics,
        clients=KafkaClients("127.0.0.1:1"),  # never dialled: nothing here rebuilds from Kafka
        dedupe_ttl_s=3600,
    )
    return ProcessorUnderTest(processor, under_test, states, changelog)
