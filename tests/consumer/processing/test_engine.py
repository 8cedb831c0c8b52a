"""The engine against the real broker, with a handler that finishes some records and holds others:
what it counts as in flight after rebalances, and what it commits."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from confluent_kafka import Consumer, Message, Producer

from consumer.clients import KafkaClients
from consumer.processing.engine import EngineLimits, ProcessingEngine
from support.kafka import TopicFactory
from support.waiting import eventually

pytestmark = pytest.mark.kafka


@dataclass
class HoldingHandler:
    """Finishes every record at once except those whose key starts with ``hold``: those stay in
    ``handle`` until cancelled (a CRM call that never ends)."""

    running: set[tuple[int, int]] = field(default_factory=set)
    finished: int = 0

    async def handle(self, message: Message) -> None:
        position = (message.partition() or 0, message.offset() or 0)
        if not (message.key() or b"").startswith(b"hold"):
            self.finished += 1
            return
        self.running.add(position)
        try:
            await asyncio.Event().wait()
        finally:
            self.running.discard(position)

    async def prepare_partition(self, topic: str, partition: int, committed: int | None) -> None:
        return None

    def assignment_changed(self, assigned: int, total: int) -> None:
        return None

    def partition_dropped(self, topic: str, partition: int) -> None:
        return None

    def is_writing(self, topic: str, partition: int, offset: int) -> bool:
        return False


@dataclass
class Observed:
    in_flight_counts: list[int] = field(default_factory=lambda: [0])
    rebalances: list[tuple[str, int]] = field(default_factory=list)

    def in_flight(self, count: int) -> None:
        self.in_flight_counts.append(count)

    def paused_partitions(self, count: int) -> None:
        return None

    def rebalance(self, kind: str, partitions: int) -> None:
        self.rebalances.append((kind, partitions))

    def kafka_stats(self, stats_json: str) -> None:
        return None


def config(bootstrap: str, group_id: str) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap,
        "group.id": group_id,
        "partition.assignment.strategy": "cooperative-sticky",
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 1000,
    }


@asynccontextmanager
async def running(engine: ProcessingEngine) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(engine.run(stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


class Visitor:
    """A second member of the group, in a thread: joining takes partitions from the engine
    (a revoke there), leaving gives them back (an assign)."""

    def __init__(self, bootstrap: str, group_id: str, topic: str) -> None:
        self._consumer = Consumer(config(bootstrap, group_id))
        self._consumer.subscribe([topic])
        self._stop = threading.Event()
        self.owns = 0
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._consumer.poll(0.1)
            self.owns = len(self._consumer.assignment())

    def leave(self) -> None:
        self._stop.set()
        self._thread.join()
        self._consumer.close()


async def test_after_rebalances_in_flight_equals_the_records_actually_held(
    kafka_bootstrap: str, topics: TopicFactory
) -> None:
    """Issue 8 §6: each revoke subtracted the records finished above a held one a second time;
    the count went negative and the in-flight bound wore away."""
    topic = topics.create("engine", partitions=4)
    group_id = f"engine-{uuid.uuid4().hex[:8]}"
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for partition in range(4):
        producer.produce(topic, key=f"hold-{partition}", value=b"x", partition=partition)
        for n in range(20):  # finished, but above the held record: never contiguous
            producer.produce(topic, key=f"k-{partition}-{n}", value=b"x", partition=partition)
    assert producer.flush(30) == 0

    handler, observed = HoldingHandler(), Observed()
    engine = ProcessingEngine(
        config(kafka_bootstrap, group_id),
        topic,
        handler,
        observed,
        EngineLimits(max_in_flight=1000, revoke_drain_s=0.0),
        clients=KafkaClients(kafka_bootstrap),
    )

    async def settled() -> None:
        """Every partition is back with its held record; then the count must equal it."""
        await eventually(lambda: asyncio.sleep(0, len(handler.running) == 4), timeout=60)
        with contextlib.suppress(TimeoutError):
            await eventually(
                lambda: asyncio.sleep(0, observed.in_flight_counts[-1] == 4), timeout=10
            )
        assert (observed.in_flight_counts[-1], len(handler.running)) == (4, 4)

    async with running(engine):
        await settled()
        for _ in range(3):
            visitor = Visitor(kafka_bootstrap, group_id, topic)
            await eventually(lambda v=visitor: asyncio.sleep(0, v.owns > 0), timeout=60)
            revokes = sum(1 for kind, _ in observed.rebalances if kind == "revoke")
            assert revokes > 0
            await asyncio.to_thread(visitor.leave)
            # The partitions come back; their held records are read again and held again, and
            # the records after them are read and finished again.
            await settled()
        assert min(observed.in_flight_counts) >= 0
        assert observed.in_flight_counts[-1] == len(handler.running) == 4
