"""Was this event id already finished within the TTL? Per partition, rebuilt from the partition.

Every event of a customer is keyed by its customer id, so all copies of one event (sender
retries, a bridge that produced twice) land in the same partition. Dedupe state is therefore
per partition, and it needs no store of its own: the records of the partition *before its
committed offset* are exactly the ones some owner finished (written or dead-lettered). A new
owner reads that stretch of the log back with :func:`rebuild_partition` before it processes the
partition, so duplicates are caught across restarts and rebalances alike. The sink's
``Idempotency-Key`` catches what slips through (a record finished but not yet committed when its
owner died).

**One clock: the partition's record timestamps.** Every decision compares record timestamps
(epoch milliseconds) with record timestamps: "within the TTL" is measured from the copy that was
finished to the copy now handled, and ids are forgotten once the partition's *stream time* (the
newest record timestamp seen, as in Kafka Streams) is a TTL past them. So a consumer catching up
on a backlog older than the TTL dedupes as one that keeps up, and the history a new owner
rebuilds is the TTL before the partition's stream time at the committed offset, not before the
wall clock. The wall clock only bounds what a producer may claim: a record timestamp more than
:data:`~schemas.model.MAX_CLOCK_SKEW_S` ahead of it counts as that bound (Kafka 4 brokers refuse
such records by default, ``message.timestamp.after.max.ms``; older topics may hold them), so one
future-dated record cannot move stream time on by days and switch dedupe off until then.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Final

from confluent_kafka import OFFSET_END, Consumer, KafkaException, Message, TopicPartition

from consumer.clients import KafkaClients
from consumer.errors import ConfigurationError, ConsumerError
from consumer.partition_reader import (
    PartitionReadError,
    read_range,
    standalone_consumer,
    watermarks,
)
from schemas.codec import EventCodec
from schemas.errors import SchemaError
from schemas.model import MAX_CLOCK_SKEW_S
from schemas.topics import HEADER_EVENT_ID

# The seed's Data Store kept idempotency keys for an hour; sender retries and platform
# redeliveries come within minutes, so an hour covers them with room to spare.
DEFAULT_TTL_S: Final = 3600.0
# A hard bound per partition on top of the TTL. At 200 events/s for a whole group the TTL alone
# holds 720,000 ids (~200 MB) on one instance owning every partition; a partition that receives
# more than this within the TTL is under a load the TTL was not sized for, and its oldest ids
# (the least likely to be retried) go first rather than the process running out of memory.
DEFAULT_MAX_IDS_PER_PARTITION: Final = 500_000

# The rebuild reads the window newest first, this many offsets at a time: a rebuild cut short
# (the broker away, the time budget spent) keeps the most recent ids, the ones retries are
# likeliest to repeat. One chunk is one fetch of a few hundred KiB of small records.
REBUILD_CHUNK_OFFSETS: Final = 2_000

PartitionKey = tuple[str, int]
WallClock = Callable[[], float]
"""Seconds since the epoch (``time.time``); only bounds record timestamps from the future."""


def latest_credible_ms(wall_clock: WallClock) -> int:
    """The latest record timestamp taken at its word: the wall clock plus the allowed skew."""
    return int((wall_clock() + MAX_CLOCK_SKEW_S) * 1000)


class DedupeRebuildError(ConsumerError):
    """A partition's dedupe history could not be read back; ``partial`` holds what was read."""

    def __init__(self, message: str, partial: dict[str, int]) -> None:
        super().__init__(message)
        self.partial = partial


class PartitionDedupe:
    """Event ids finished in one partition, each with the record timestamp (ms) it carried.

    Expiry is amortised: a min-heap orders ids by timestamp, and every call drops what fell out
    of the TTL behind the highest time seen so far, so each id costs O(log n) once to add and
    once to expire and memory holds one TTL's worth of ids (at most ``max_ids``). Expiry follows
    the highest time seen, not a wall clock, so it moves exactly as fast as the lookups' notion
    of "now" and never drops an id a lookup would still count.
    """

    def __init__(
        self,
        ttl_s: float = DEFAULT_TTL_S,
        max_ids: int = DEFAULT_MAX_IDS_PER_PARTITION,
        *,
        wall_clock: WallClock = time.time,
    ) -> None:
        _check_limits(ttl_s, max_ids)
        self._ttl_ms = round(ttl_s * 1000)
        self._max_ids = max_ids
        self._wall_clock = wall_clock
        self._timestamps: dict[str, int] = {}
        # (timestamp, event id); an id remembered again with a later timestamp leaves its old
        # entry behind, recognised as stale on the way out because the dict disagrees.
        self._expiry: list[tuple[int, str]] = []
        self._high_ms: int | None = None

    def __len__(self) -> int:
        return len(self._timestamps)

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._timestamps

    @property
    def size(self) -> int:
        return len(self._timestamps)

    def is_duplicate(self, event_id: str, now_ms: int) -> bool:
        """True if ``event_id`` was finished with a timestamp less than a TTL before ``now_ms``
        (the timestamp of the record being handled)."""
        now_ms = self._credible(now_ms)
        self._expire(now_ms)
        timestamp = self._timestamps.get(event_id)
        return timestamp is not None and now_ms - timestamp < self._ttl_ms

    def remember(self, event_id: str, timestamp_ms: int) -> None:
        """Note ``event_id`` as finished; a later timestamp for a known id refreshes it."""
        timestamp_ms = self._credible(timestamp_ms)
        known = self._timestamps.get(event_id)
        if known is None or timestamp_ms > known:
            self._timestamps[event_id] = timestamp_ms
            heapq.heappush(self._expiry, (timestamp_ms, event_id))
        self._expire(timestamp_ms)

    def _credible(self, timestamp_ms: int) -> int:
        return min(timestamp_ms, latest_credible_ms(self._wall_clock))

    def _expire(self, now_ms: int) -> None:
        if self._high_ms is None or now_ms > self._high_ms:
            self._high_ms = now_ms
        horizon = self._high_ms - self._ttl_ms
        while self._expiry and (
            self._expiry[0][0] <= horizon or len(self._timestamps) > self._max_ids
        ):
            timestamp, event_id = heapq.heappop(self._expiry)
            if self._timestamps.get(event_id) == timestamp:
                del self._timestamps[event_id]


class DedupeIndex:
    """Dedupe state for every partition this instance owns, kept apart per (topic, partition)."""

    def __init__(
        self,
        ttl_s: float = DEFAULT_TTL_S,
        max_ids_per_partition: int = DEFAULT_MAX_IDS_PER_PARTITION,
        *,
        wall_clock: WallClock = time.time,
    ) -> None:
        # Checked here too, so a bad setting fails at start-up rather than at the first record.
        _check_limits(ttl_s, max_ids_per_partition)
        self._ttl_s = ttl_s
        self._max_ids = max_ids_per_partition
        self._wall_clock = wall_clock
        self._partitions: dict[PartitionKey, PartitionDedupe] = {}

    @property
    def ttl_s(self) -> float:
        return self._ttl_s

    def is_duplicate(self, topic: str, partition: int, event_id: str, now_ms: int) -> bool:
        state = self._partitions.get((topic, partition))
        return state is not None and state.is_duplicate(event_id, now_ms)

    def remember(self, topic: str, partition: int, event_id: str, timestamp_ms: int) -> None:
        self._partition(topic, partition).remember(event_id, timestamp_ms)

    def load_partition(self, topic: str, partition: int, finished: Mapping[str, int]) -> None:
        """Add what :func:`rebuild_partition` returned, oldest first so expiry stays amortised."""
        state = self._partition(topic, partition)
        for event_id, timestamp_ms in sorted(finished.items(), key=lambda item: item[1]):
            state.remember(event_id, timestamp_ms)

    def drop_partition(self, topic: str, partition: int) -> None:
        """Forget a revoked or lost partition; its next owner rebuilds it from the log."""
        self._partitions.pop((topic, partition), None)

    def size(self, topic: str, partition: int) -> int:
        state = self._partitions.get((topic, partition))
        return 0 if state is None else state.size

    def sizes(self) -> dict[PartitionKey, int]:
        """Ids held per partition, for a gauge."""
        return {key: state.size for key, state in self._partitions.items()}

    def __iter__(self) -> Iterator[PartitionKey]:
        return iter(list(self._partitions))

    def _partition(self, topic: str, partition: int) -> PartitionDedupe:
        key = (topic, partition)
        state = self._partitions.get(key)
        if state is None:
            state = self._partitions[key] = PartitionDedupe(
                self._ttl_s, self._max_ids, wall_clock=self._wall_clock
            )
        return state


def _check_limits(ttl_s: float, max_ids: int) -> None:
    if ttl_s < 0:
        raise ConfigurationError(f"dedupe TTL must be >= 0, got {ttl_s}")
    if max_ids < 1:
        raise ConfigurationError(f"dedupe bound must be >= 1 id per partition, got {max_ids}")


def rebuild_partition(
    clients: KafkaClients,
    topic: str,
    partition: int,
    *,
    until_offset: int,
    ttl_s: float,
    timeout_s: float = 30.0,
    codec: EventCodec | None = None,
    consumer_config: Mapping[str, object] | None = None,
    wall_clock: WallClock = time.time,
    clock: Callable[[], float] = time.monotonic,
    chunk_offsets: int = REBUILD_CHUNK_OFFSETS,
) -> dict[str, int]:
    """Event id -> record timestamp (ms) of the records finished within the TTL before the
    partition's stream time at ``until_offset``.

    ``until_offset`` is the partition's committed offset: everything before it was finished
    (written or dead-lettered); pass nothing below 1 unless the range is meant to be empty.
    Stream time there is the newest record timestamp among the last ``chunk_offsets`` records
    before it (bounded by ``wall_clock``, see the module's note), and the window is the ``ttl_s``
    before that, wherever the wall clock is: a consumer lagging by more than the TTL still gets
    its history. The window is read newest first, ``chunk_offsets`` at a time. The id comes from
    the ``event-id`` header, else from the decoded value (``codec``, default: single-object Avro
    only, so pass the engine's codec when a schema registry is in use); records with neither were
    poison and are skipped. Replayed records (header :data:`~schemas.topics.HEADER_REPLAY_COUNT`)
    count like any other: they were finished too; it is only at processing time that a replayed
    record bypasses dedupe.

    Blocking: call it from a worker thread. It reads with a standalone consumer (see
    :mod:`consumer.partition_reader`), so it touches no consumer group. Raises
    :class:`DedupeRebuildError` when the broker cannot be read within ``timeout_s`` (of
    ``clock``, a monotonic clock in seconds); its ``partial`` holds the newest part of the
    window read so far. ``consumer_config`` adds client properties.
    """
    if until_offset <= 0:
        return {}
    deadline = clock() + timeout_s
    codec = codec or EventCodec(topic)
    consumer = standalone_consumer(clients, "segstream-dedupe-rebuild", consumer_config)
    finished: dict[str, int] = {}
    try:
        low, high = watermarks(consumer, topic, partition, deadline, clock=clock)
        end = min(until_offset, high)
        since_ms: int | None = None
        chunk_end = end
        while chunk_end > low:
            chunk_start = max(chunk_end - chunk_offsets, low)
            chunk = list(
                read_range(
                    consumer, topic, partition, start=chunk_start, end=chunk_end,
                    deadline=deadline, clock=clock,
                )
            )  # fmt: skip
            if since_ms is None:
                stamps = [t for t in map(_timestamp, chunk) if t is not None]
                if not stamps:
                    break  # no timestamped record in the tail: no history to speak of
                stream_time_ms = min(max(stamps), latest_credible_ms(wall_clock))
                since_ms = stream_time_ms - round(ttl_s * 1000)
                first = _first_offset_at(consumer, (topic, partition), since_ms, deadline, clock)
                low = max(low, first)
            for message in chunk:
                _note(finished, message, codec, since_ms)
            chunk_end = chunk_start
    except PartitionReadError as exc:
        raise DedupeRebuildError(str(exc), finished) from exc
    finally:
        consumer.close()
    return finished


def _first_offset_at(
    consumer: Consumer,
    where: PartitionKey,
    since_ms: int,
    deadline: float,
    clock: Callable[[], float],
) -> int:
    """The first offset with a timestamp at or after ``since_ms`` (the high watermark when
    there is none); the read stops there."""
    topic, partition = where
    try:
        [found] = consumer.offsets_for_times(
            [TopicPartition(topic, partition, since_ms)],
            timeout=max(deadline - clock(), 0.001),
        )
    except KafkaException as exc:
        raise PartitionReadError(f"cannot locate {topic}[{partition}]: {exc}") from exc
    if found.error is not None:
        raise PartitionReadError(f"cannot locate {topic}[{partition}]: {found.error}")
    if found.offset == OFFSET_END:
        return watermarks(consumer, topic, partition, deadline, clock=clock)[1]
    return int(found.offset)


def _timestamp(message: Message) -> int | None:
    kind, timestamp = message.timestamp()
    return timestamp if kind and timestamp >= 0 else None


def _note(finished: dict[str, int], message: Message, codec: EventCodec, since_ms: int) -> None:
    timestamp = _timestamp(message)
    if timestamp is None:
        # No timestamp (a pre-0.10 message format): remember it as if just inside the window,
        # so it is kept for the shortest time rather than dropped.
        timestamp = since_ms
    if timestamp < since_ms:
        return
    event_id = _event_id(message, codec)
    if event_id is None:
        return
    if timestamp > finished.get(event_id, -1):
        finished[event_id] = timestamp


def _event_id(message: Message, codec: EventCodec) -> str | None:
    raw_headers = message.headers() or []
    headers = raw_headers.items() if isinstance(raw_headers, dict) else raw_headers
    for name, value in headers:
        if name == HEADER_EVENT_ID and value:
            text = value if isinstance(value, str) else value.decode("utf-8", errors="replace")
            if text.strip():
                return text
    try:
        record = codec.decode_record(message.value() or b"")
    except SchemaError:
        return None
    event_id = record.get("event_id")
    return event_id if isinstance(event_id, str) and event_id.strip() else None
