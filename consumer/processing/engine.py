"""The consume loop: fetch, schedule by key, track offsets, pause, rebalance, shut down.

Threading: every call into the ``Consumer`` happens on one dedicated thread (``consume``,
``store_offsets``, ``pause``/``resume``, ``commit``, ``close``), because rebalance callbacks run
inside ``consume`` on that thread. Processing runs as asyncio tasks on the event loop. A callback
that needs the engine's state (which lives on the loop) hands a coroutine to the loop and blocks
the Kafka thread until it is done; the loop is free to run it, since all it does meanwhile is
await that very ``consume`` call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from consumer.clients import KafkaClients
from consumer.errors import FatalClientError
from consumer.processing.commit import commit_now, commit_positions, confirm_membership, store
from consumer.processing.drain import finish_writes
from consumer.processing.fatal import fatal_error
from consumer.processing.flow import InFlight, Pauses, PauseWish
from consumer.processing.holds import PartitionHolds
from consumer.processing.keyqueues import KeyedQueues
from consumer.processing.lease import WriteLease
from consumer.processing.progress import PartitionProgress

Partition = tuple[str, int]

# The group consumer's client.id (the broker's logs and quotas, librdkafka's log lines).
CLIENT_ID: Final = "segstream-consumer"

# One consume() call returns at most this many records. Smaller than the in-flight bound so a
# batch cannot overshoot it by much.
_MAX_BATCH: Final = 500
# How long consume() blocks when nothing arrives. Pause/resume and offset stores are applied
# between calls, so this bounds how late they take effect; 0.2 s is invisible next to a
# rebalance and costs ~5 idle wake-ups per second.
_POLL_TIMEOUT_S: Final = 0.2

_log = logging.getLogger(__name__)


class RecordHandler(Protocol):
    """What the engine drives; the engine knows Kafka, the handler knows what a record means."""

    async def handle(self, message: Message) -> None:
        """Process one record. Returning means finished (written, skipped or dead-lettered);
        raising means the consumer must stop without committing past this record."""

    async def prepare_partition(self, topic: str, partition: int, committed: int | None) -> None:
        """Runs when a partition is assigned, before any of its records are handled."""

    def assignment_changed(self, assigned: int, total: int) -> None:
        """This instance now owns ``assigned`` of the topic's ``total`` partitions."""

    def partition_dropped(self, topic: str, partition: int) -> None: ...

    def is_writing(self, topic: str, partition: int, offset: int) -> bool:
        """True while the record's write is under way (to the sink, or the dead letter or state
        change that finishes it): on a revoke or shutdown that one is waited for (bounded); a
        record still waiting for anything else (a token, a retry, the breaker) is dropped at
        once and processed again by the partition's next owner."""


class EngineObserver(Protocol):
    """Metrics hooks; every method must be cheap and must not raise."""

    def in_flight(self, count: int) -> None: ...
    def paused_partitions(self, count: int) -> None: ...
    def rebalance(self, kind: str, partitions: int) -> None: ...
    def kafka_stats(self, stats_json: str) -> None: ...


@dataclass(eq=False)
class _Record:
    message: Message
    partition: Partition
    offset: int
    key: Hashable
    task: asyncio.Task[None] | None = None


@dataclass
class _PartitionState:
    progress: PartitionProgress = field(default_factory=PartitionProgress)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    leaving: bool = False  # revoked or lost: start nothing new
    prepare: asyncio.Task[None] | None = None


@dataclass(frozen=True)
class EngineLimits:
    # Records fetched but not finished, all partitions together. Memory is bounded by this times
    # the record size (~1 KiB here); 1000 keeps a 12-partition instance busy at CRM latencies of
    # tens of ms without holding a minute of backlog hostage on a rebalance.
    max_in_flight: int = 1000
    # A revoked partition's writes on the wire get this long to finish before they are
    # abandoned (and re-processed by the new owner): at least the longest write, so none is cut
    # off mid-way (the service derives it from the CRM timeout: ConsumerSettings). Far below
    # max.poll.interval.ms (5 min) so the group's rebalance is not held up.
    revoke_drain_s: float = 16.0
    # SIGTERM: drain this long, then commit and leave. Kubernetes' default grace period is 30 s.
    shutdown_drain_s: float = 20.0
    # The write lease (see lease.py) lapses after this long without a poll: half the session
    # timeout, so a frozen instance stops writing before the group can have replaced it.
    lease_validity_s: float = 22.5


class ProcessingEngine:
    def __init__(
        self,
        config: dict[str, Any],
        topic: str,
        handler: RecordHandler,
        observer: EngineObserver,
        limits: EngineLimits | None = None,
        *,
        clients: KafkaClients,
        holds: PartitionHolds | None = None,
    ) -> None:
        self._topic = topic
        self._instance_id = config.get("group.instance.id")
        self._holds = holds or PartitionHolds()
        self._handler = handler
        self._observer = observer
        self._limits = limits or EngineLimits()
        self._consumer = clients.consumer(
            CLIENT_ID, {**config, "stats_cb": observer.kafka_stats, "on_commit": self._on_commit}
        )
        self._kafka = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kafka-consumer")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._partitions: dict[Partition, _PartitionState] = {}
        self._queues: KeyedQueues[_Record] = KeyedQueues()
        self._in_flight = InFlight(self._limits.max_in_flight, observer)
        self._pauses = Pauses(observer)
        self._fatal: BaseException | None = None
        self._total_partitions = 0
        self._started: dict[asyncio.Task[None], _Record] = {}
        self._partition_count_stale = True
        self.lease = WriteLease(self._limits.lease_validity_s)

    # ----------------------------------------------------------------------------- public

    def pause_for_sink(self, paused: bool) -> None:
        """Stop (or restart) fetching because the sink is unusable; in-flight work continues."""
        self._in_flight.sink_unusable(paused)

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set or a record fails fatally, then drain, commit, close."""
        self._loop = asyncio.get_running_loop()
        await self._on_kafka(
            self._consumer.subscribe,
            [self._topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        try:
            while not stop.is_set() and self._fatal is None:
                room = await self._in_flight.room()
                wish = self._in_flight.wish(self._holds.held())
                messages = await self._on_kafka(self._cycle, self._safe_positions(), wish, room)
                for message in messages:
                    self._accept(message)
                self._in_flight.update()
        finally:
            await self._shutdown()
        if self._fatal is not None:
            raise self._fatal

    # ----------------------------------------------------------------------- Kafka thread

    def _cycle(self, to_store: list[TopicPartition], wish: PauseWish, room: int) -> list[Message]:
        if self._partition_count_stale:
            self._partition_count_stale = False
            self._refresh_partition_count()
        store(self._consumer, to_store)
        self._pauses.apply(self._consumer, wish)
        # consume(n, timeout) waits for n records or the timeout, so a trickle would sit in the
        # client for the whole timeout: block only for the first record, then take what is there.
        first = self._consumer.poll(_POLL_TIMEOUT_S)
        self.lease.renew(lambda: confirm_membership(self._consumer, to_store))
        if first is None:
            return []
        return (
            [first, *self._consumer.consume(min(_MAX_BATCH, room) - 1, 0)] if room > 1 else [first]
        )

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # No list_topics() here: it is one of the client calls that must not run inside a
        # rebalance callback (it resets the client's per-thread call state and a later callback
        # of the same consume() aborts the process). The partition count is refreshed by the
        # next cycle instead; committed() is safe.
        committed = consumer.committed(partitions, timeout=30)
        consumer.incremental_assign(partitions)
        self._pauses.assigned(consumer, partitions)
        positions = {(tp.topic, tp.partition): tp.offset for tp in committed}
        self._call_loop(self._assigned(positions))
        self._partition_count_stale = True
        self._observer.rebalance("assign", len(partitions))
        _log.info(
            "partitions assigned",
            extra={
                "topic": self._topic,
                "partitions": sorted(tp.partition for tp in partitions),
                "assigned_total": len(consumer.assignment()),
            },
        )

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        revoked = {(tp.topic, tp.partition) for tp in partitions}
        self._pauses.forget(revoked)
        offsets: list[TopicPartition] = self._call_loop(self._leave(revoked, drain=True))
        commit_now(consumer, offsets, "revoke")
        self._observer.rebalance("revoke", len(partitions))
        _log.info(
            "partitions revoked",
            extra={
                "topic": self._topic,
                "partitions": sorted(tp.partition for tp in partitions),
                "committed": {tp.partition: tp.offset for tp in offsets},
            },
        )

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Another member may own them already: committing now could move its offsets backwards
        # or forwards under it, so drop everything and commit nothing.
        lost = {(tp.topic, tp.partition) for tp in partitions}
        self._pauses.forget(lost)
        self._call_loop(self._leave(lost, drain=False))
        self._observer.rebalance("lost", len(partitions))
        _log.warning(
            "partitions lost",
            extra={
                "topic": self._topic,
                "partitions": sorted(tp.partition for tp in partitions),
            },
        )

    def _refresh_partition_count(self) -> None:
        try:
            metadata = self._consumer.list_topics(self._topic, timeout=10)
        except KafkaException as exc:
            _log.warning("topic metadata unavailable", extra={"reason": str(exc)})
            self._partition_count_stale = True
            return
        total = len(metadata.topics[self._topic].partitions)
        assigned = len(self._consumer.assignment())
        self._call_loop(self._count_changed(assigned, total))

    def _call_loop(self, coroutine: Any) -> Any:
        if self._loop is None:
            raise RuntimeError("rebalance callback before the engine started")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    async def _on_kafka(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._kafka, lambda: function(*args, **kwargs))

    # ------------------------------------------------------------------------ event loop

    async def _count_changed(self, assigned: int, total: int) -> None:
        self._total_partitions = total
        self._handler.assignment_changed(assigned, total)

    async def _assigned(self, committed: dict[Partition, int]) -> None:
        for partition, offset in committed.items():
            state = _PartitionState()
            self._partitions[partition] = state
            position = offset if offset >= 0 else None
            state.prepare = asyncio.create_task(self._prepare(partition, state, position))
        if self._total_partitions:
            self._handler.assignment_changed(len(self._partitions), self._total_partitions)

    async def _prepare(
        self, partition: Partition, state: _PartitionState, committed: int | None
    ) -> None:
        try:
            await self._handler.prepare_partition(partition[0], partition[1], committed)
        except Exception:
            # Without its dedupe history the partition still works: the CRM's Idempotency-Key
            # catches what slips through. Losing throughput here would be worse.
            _log.exception(
                "partition preparation failed; continuing without it",
                extra={"topic": partition[0], "partition": partition[1]},
            )
        state.ready.set()

    async def _leave(self, partitions: set[Partition], *, drain: bool) -> list[TopicPartition]:
        leaving = {p: self._partitions[p] for p in partitions if p in self._partitions}
        for state in leaving.values():
            state.leaving = True
            if state.prepare is not None and not state.prepare.done():
                state.prepare.cancel()
        dropped = self._queues.drop_where(lambda key: key[:2] in leaving)  # type: ignore[index]
        running = [r for r in dropped if r.task is not None and not r.task.done()]
        await self._finish_writes(running, self._limits.revoke_drain_s if drain else 0.0)
        offsets = commit_positions((p, state.progress) for p, state in leaving.items())
        for partition, state in leaving.items():
            self._in_flight.dropped(state.progress.unfinished)
            del self._partitions[partition]
            self._handler.partition_dropped(*partition)
        self._in_flight.update()
        if self._total_partitions:
            self._handler.assignment_changed(len(self._partitions), self._total_partitions)
        return offsets if drain else []

    def _accept(self, message: Message) -> None:
        error = message.error()
        if error is not None:
            fatal = fatal_error(error, self._instance_id)
            if fatal is not None:
                self._client_failed(fatal)
            elif error.code() != KafkaError._PARTITION_EOF:
                _log.warning("consume error", extra={"reason": error.str()})
            return
        topic, number, offset = message.topic(), message.partition(), message.offset()
        if topic is None or number is None or offset is None:
            return
        partition = (topic, number)
        state = self._partitions.get(partition)
        if state is None or state.leaving:
            return  # fetched just before a revoke; the next owner reads it again
        state.progress.track(offset)
        self._in_flight.fetched()
        key = message.key()
        record = _Record(
            message, partition, offset, (topic, number, key if key is not None else offset)
        )
        if self._queues.push(record.key, record):
            self._start(record, state)

    def _client_failed(self, fatal: FatalClientError) -> None:
        """The client can do nothing more (any thread). Stop at once, without draining or
        committing: another member may own the partitions already; no write starts from now."""
        self.lease.revoke()
        if self._fatal is not None:
            return
        self._fatal = fatal
        _log.error(
            "stopping: %s",
            fatal,
            extra={"group_instance_id": self._instance_id, "error_class": type(fatal).__name__},
        )

    def _on_commit(self, error: KafkaError | None, _: list[TopicPartition]) -> None:
        fatal = None if error is None else fatal_error(error, self._instance_id)
        if fatal is not None:
            self._client_failed(fatal)

    def _start(self, record: _Record, state: _PartitionState) -> None:
        record.task = asyncio.create_task(self._process(record, state))
        self._started[record.task] = record
        record.task.add_done_callback(self._started.pop)

    def _records(self) -> list[_Record]:
        return list(self._started.values())

    async def _process(self, record: _Record, state: _PartitionState) -> None:
        await state.ready.wait()
        try:
            await self._handler.handle(record.message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if self._fatal is None:
                self._fatal = exc
            _log.error(
                "record failed fatally; stopping",
                exc_info=exc,
                extra={
                    "topic": record.partition[0],
                    "partition": record.partition[1],
                    "offset": record.offset,
                },
            )
            return
        state.progress.finish(record.offset)
        self._in_flight.finished()
        if state.leaving:
            return
        following = self._queues.finish_head(record.key)
        if following is not None and self._fatal is None:
            self._start(following, state)
        self._in_flight.update()

    def _safe_positions(self) -> list[TopicPartition]:
        return commit_positions(
            (p, state.progress) for p, state in self._partitions.items() if not state.leaving
        )

    async def _finish_writes(self, records: list[_Record], grace_s: float) -> None:
        """See :func:`consumer.processing.drain.finish_writes`."""
        tasks = {r.task: r for r in records if r.task is not None and not r.task.done()}
        await finish_writes(
            tasks, lambda r: self._handler.is_writing(*r.partition, r.offset), grace_s
        )

    async def _shutdown(self) -> None:
        client_failed = isinstance(self._fatal, FatalClientError)
        running = [r for r in self._records() if r.task is not None and not r.task.done()]
        if running:
            _log.info("draining", extra={"records": len(running)})
            await self._finish_writes(
                running, 0.0 if client_failed else self._limits.shutdown_drain_s
            )
        for state in self._partitions.values():
            if state.prepare is not None:
                state.prepare.cancel()
        if not client_failed:
            await self._on_kafka(commit_now, self._consumer, self._safe_positions(), "shutdown")
        with contextlib.suppress(KafkaException):
            await self._on_kafka(self._consumer.close)
        self._kafka.shutdown(wait=True)
