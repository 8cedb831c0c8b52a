"""Reading the dead-letter topic: a fixed window per partition, by ``assign()``, never joining.

Every command reads the records that exist when it starts: the window of a partition ends at its
last stable offset of that moment. Dead letters written while a replay runs (a replayed record
that fails again) are left for the next run, so one run can never chase its own tail.

The consumer has the replay group's ``group.id`` only to read the group's committed offsets
(and, in a real run, to name the group in ``send_offsets_to_transaction``); it is assigned its
partitions and never joins, so it cannot disturb the group or commit by itself.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from consumer.clients import KafkaClients
from consumer.dlq.errors import KafkaUnavailableError, UsageError
from consumer.dlq.ledger import LedgerError, PartitionLedger
from consumer.errors import ConsumerError
from consumer.topics import describe_topic

# Records per consume() call: the tool only copies bytes, so large batches.
_BATCH: Final = 500
# Group coordinator answers that mean "ask again shortly" (it is loading or moving).
_COORDINATOR_BUSY: Final = frozenset(
    {
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
    }
)
# Upper bound of one consume() wait, so a stop request is seen at least this often.
_POLL_S: Final = 0.5


@dataclass(frozen=True)
class Window:
    """``[start, end)`` of one partition: what this run reads."""

    partition: int
    start: int
    end: int

    @property
    def size(self) -> int:
        return max(self.end - self.start, 0)


@dataclass(frozen=True)
class PartitionEnd:
    """All of the partition's window has been read; ``offset`` is its end."""

    partition: int
    offset: int


class DeadLetterReader:
    def __init__(
        self, clients: KafkaClients, topic: str, group_id: str, *, timeout_s: float
    ) -> None:
        self.topic = topic
        self._timeout_s = timeout_s
        self._consumer = clients.consumer(
            "segstream-dlq",
            {
                "group.id": group_id,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                # The dead-letter topic may be written transactionally by some tool; never
                # read what such a writer aborted.
                "isolation.level": "read_committed",
                "auto.offset.reset": "earliest",
                "enable.partition.eof": True,
            },
        )

    @property
    def consumer(self) -> Consumer:
        return self._consumer

    def partitions(self) -> list[int]:
        try:
            topic = describe_topic(self._consumer, self.topic, self._timeout_s)
        except ConsumerError as exc:
            raise KafkaUnavailableError(f"cannot read the cluster's metadata: {exc}") from exc
        if topic is None:
            raise UsageError(f"dead-letter topic {self.topic!r} does not exist")
        return sorted(topic.partitions)

    def ledgers(self, partitions: list[int]) -> dict[int, PartitionLedger]:
        """What the replay group has handled, from its committed offsets and their metadata."""
        ledgers = {}
        for tp in self._committed(partitions):
            offset = tp.offset if tp.offset >= 0 else None
            try:
                ledgers[tp.partition] = PartitionLedger.from_commit(offset, tp.metadata)
            except LedgerError as exc:
                raise UsageError(
                    f"replay group's commit on {self.topic}[{tp.partition}]: {exc}; "
                    "use a group of its own (SEGSTREAM_DLQ_GROUP_ID)"
                ) from exc
        return ledgers

    def _committed(self, partitions: list[int]) -> list[TopicPartition]:
        """The group's committed offsets; a coordinator still loading or moving is waited for."""
        wanted = [TopicPartition(self.topic, p) for p in partitions]
        deadline = time.monotonic() + self._timeout_s
        while True:
            remaining = max(deadline - time.monotonic(), 0.1)
            try:
                committed = self._consumer.committed(wanted, timeout=remaining)
            except KafkaException as exc:
                error = exc.args[0] if exc.args else None
                retriable = isinstance(error, KafkaError) and (
                    error.retriable() or error.code() in _COORDINATOR_BUSY
                )
                failure = str(exc)
            else:
                errors = [tp.error for tp in committed if tp.error is not None]
                if not errors:
                    return list(committed)
                retriable = all(e.retriable() or e.code() in _COORDINATOR_BUSY for e in errors)
                failure = errors[0].str()
            if not retriable or time.monotonic() > deadline:
                raise KafkaUnavailableError(f"cannot read the replay group's offsets: {failure}")
            time.sleep(0.2)

    def windows(
        self, ledgers: dict[int, PartitionLedger], *, from_log_start: bool = False
    ) -> dict[int, Window]:
        """From each ledger's low-water mark (or the log start, if retention passed it; or
        always, with ``from_log_start``) to the partition's last stable offset now. Ledgers are
        moved past what retention deleted."""
        windows = {}
        for partition, ledger in ledgers.items():
            low, high = self._watermarks(partition)
            ledger.advance_to(low)
            start = low if from_log_start else max(ledger.low, low)
            windows[partition] = Window(partition, start, high)
        return windows

    def _watermarks(self, partition: int) -> tuple[int, int]:
        deadline = time.monotonic() + self._timeout_s
        while True:
            try:
                low, high = self._consumer.get_watermark_offsets(
                    TopicPartition(self.topic, partition),
                    timeout=max(deadline - time.monotonic(), 0.1),
                )
                return int(low), int(high)
            except KafkaException as exc:  # a leader not known yet: retried until the deadline
                if time.monotonic() > deadline:
                    raise KafkaUnavailableError(
                        f"no offsets for {self.topic}[{partition}]: {exc}"
                    ) from exc
                time.sleep(0.2)

    def read(
        self, windows: dict[int, Window], stop: threading.Event
    ) -> Iterator[Message | PartitionEnd]:
        """Every record in the windows, in offset order per partition, then a
        :class:`PartitionEnd` per partition; returns early when ``stop`` is set."""
        pending = {p: w for p, w in windows.items() if w.size > 0}
        for partition, window in windows.items():
            if window.size == 0:
                yield PartitionEnd(partition, window.end)
        if not pending:
            return
        self._consumer.assign([TopicPartition(self.topic, p, w.start) for p, w in pending.items()])
        deadline = time.monotonic() + self._timeout_s
        try:
            while pending and not stop.is_set():
                messages = self._consumer.consume(_BATCH, timeout=_POLL_S)
                if not messages and time.monotonic() > deadline:
                    raise KafkaUnavailableError(
                        f"no records from {self.topic} for {self._timeout_s:.0f}s; "
                        f"partitions still to read: {sorted(pending)}"
                    )
                for message in messages:
                    partition = message.partition() or 0
                    current = pending.get(partition)
                    if current is None:
                        continue  # finished; records after the window are the next run's
                    step = _step(message, current, self.topic)
                    if step is _Step.SKIP:
                        continue
                    if step is _Step.RECORD:
                        yield message
                        # Counted from when the caller is done with it: a slow --rate (or a
                        # long transaction commit) is not the cluster being silent.
                        deadline = time.monotonic() + self._timeout_s
                        if stop.is_set():
                            return
                        if (message.offset() or 0) + 1 < current.end:
                            continue
                    del pending[partition]
                    yield PartitionEnd(partition, current.end)
                    deadline = time.monotonic() + self._timeout_s
        finally:
            self._consumer.unassign()

    def close(self) -> None:
        self._consumer.close()


class _Step(enum.Enum):
    SKIP = "skip"  # nothing for the caller (an informational error, an early EOF)
    RECORD = "record"  # a record in the window
    END = "end"  # the window is complete


def _step(message: Message, window: Window, topic: str) -> _Step:
    offset = message.offset() or 0
    error = message.error()
    if error is None:
        return _Step.RECORD if offset < window.end else _Step.END
    if error.code() != KafkaError._PARTITION_EOF:
        _raise_if_fatal(error, topic)
        return _Step.SKIP
    return _Step.END if offset >= window.end else _Step.SKIP


def _raise_if_fatal(error: KafkaError, topic: str) -> None:
    """Transport hiccups are retried by librdkafka itself (they are reported for information);
    a topic or partition that vanished, or a fatal error, stops the run."""
    code = error.code()
    fatal: tuple[Any, ...] = (
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._UNKNOWN_PARTITION,
        KafkaError._UNKNOWN_TOPIC,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
    )
    if error.fatal() or code in fatal:
        raise KafkaUnavailableError(f"reading {topic}: {error.str()}")
