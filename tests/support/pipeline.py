"""The consumer's record path in-process: the real RecordProcessor, SinkWriter and CrmHttpSink,
with the two Kafka-backed parts (state changelog, dead-letter topic) kept in memory.

For tests about what a record does (fold, write, dead-letter) without a broker; the integration
tests run the same code in real consumer processes against a real broker.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, cast

from confluent_kafka import Message
from prometheus_client import CollectorRegistry

from consumer.breaker import CircuitBreaker
from consumer.clients import KafkaClients
from consumer.deadletter import DeadLetterPublisher, Failure
from consumer.dedupe import DedupeIndex
from consumer.metrics import ConsumerMetrics
from consumer.pipeline import RecordProcessor
from consumer.ratelimit import GroupRateLimiter
from consumer.retry import RetryPolicy
from consumer.sink.http import CrmHttpSink
from consumer.state import CustomerStates
from consumer.state.changelog import ChangelogRecord
from consumer.writer import SinkWriter
from schemas.codec import EventCodec
from schemas.model import InteractionCompleted
from schemas.topics import HEADER_EVENT_ID, HEADER_REPLAY_COUNT

TOPIC = "interactions"
WEEK_MS = 7 * 86_400_000


@dataclass
class MemoryChangelog:
    """The state changelog as an append-only list per partition (no compaction needed: restore
    replays the log in order, as it does from Kafka)."""

    logs: dict[int, list[ChangelogRecord]] = field(default_factory=lambda: defaultdict(list))

    async def write(self, partition: int, key: bytes, value: bytes | None) -> None:
        self.logs[partition].append((key, value))

    def write_nowait(self, partition: int, key: bytes, value: bytes | None) -> None:
        self.logs[partition].append((key, value))

    def read(self, partition: int) -> Iterator[ChangelogRecord]:
        return iter(list(self.logs[partition]))


@dataclass
class RecordingDeadLetters:
    letters: list[tuple[Message, Failure]] = field(default_factory=list)

    async def send(self, message: Message, failure: Failure) -> None:
        self.letters.append((message, failure))


@dataclass
class InProcessConsumer:
    processor: RecordProcessor
    sink: CrmHttpSink
    dead_letters: RecordingDeadLetters
    states: CustomerStates
    metrics: ConsumerMetrics

    async def close(self) -> None:
        await self.sink.close()


async def in_process_consumer(
    crm_url: str,
    token: str,
    changelog: MemoryChangelog,
    *,
    partitions: list[int] | None = None,
    retention_ms: int = WEEK_MS,
    max_customers: int = 100_000,
) -> InProcessConsumer:
    """A consumer instance that owns ``partitions`` (default [0]), their state restored from
    ``changelog`` as a real one does on assignment."""
    metrics = ConsumerMetrics(CollectorRegistry())
    limiter = GroupRateLimiter(0, 1)
    limiter.set_share(1, 1)
    sink = CrmHttpSink(crm_url, token, timeout_s=5.0, max_connections=10, pacer=limiter)
    dead_letters = RecordingDeadLetters()
    states = CustomerStates(
        changelog, retention_ms=retention_ms, max_customers_per_partition=max_customers
    )
    for partition in partitions or [0]:
        await states.restore(partition)
    writer = SinkWriter(
        sink=sink,
        dead_letters=cast(DeadLetterPublisher, dead_letters),
        limiter=limiter,
        breaker=CircuitBreaker(),
        retry=RetryPolicy(initial_delay_s=0.01, max_delay_s=0.05, max_attempts=3),
        metrics=metrics,
        max_concurrent_writes=10,
    )
    processor = RecordProcessor(
        codec=EventCodec(TOPIC),
        writer=writer,
        states=states,
        dedupe=DedupeIndex(),
        metrics=metrics,
        clients=KafkaClients("127.0.0.1:1"),  # never dialled: nothing here rebuilds from Kafka
        dedupe_ttl_s=3600,
    )
    return InProcessConsumer(processor, sink, dead_letters, states, metrics)


_offsets = itertools.count()


def record(
    value: bytes | InteractionCompleted,
    *,
    timestamp_ms: int,
    partition: int = 0,
    replays: int | None = None,
    headers: list[tuple[str, bytes]] | None = None,
) -> Message:
    """A Kafka record as the consumer receives it (the bridge's key and headers)."""
    event = value if isinstance(value, InteractionCompleted) else None
    data = EventCodec(TOPIC).encode(event) if event is not None else cast(bytes, value)
    all_headers: list[tuple[str, Any]] = list(headers or [])
    if event is not None:
        all_headers.append((HEADER_EVENT_ID, event.event_id.encode()))
    if replays is not None:
        all_headers.append((HEADER_REPLAY_COUNT, str(replays).encode()))
    return Message(
        topic=TOPIC,
        partition=partition,
        offset=next(_offsets),
        key=event.customer_id.encode() if event is not None else b"key",
        value=data,
        headers=all_headers,
        timestamp=(1, timestamp_ms),
    )
