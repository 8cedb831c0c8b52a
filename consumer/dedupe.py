"""Was this event id already finished within the TTL? Per partition, rebuilt from the partition.

Every event of a customer is keyed by its customer id, so all copies of one event (sender
retries, a bridge that produced twice) land in the same partition. Dedupe state is therefore
per partition, and it needs no store of its own: the records of the partition *before its
committed offset* are exactly the ones some owner finished (written or dead-lettered). A new
owner reads that stretch of the log back with :func:`rebuild_partition` before it processes the
partition, so duplicates are caught across restarts and rebalances alike. The sink's
``Idempotency-Key`` catches what slips through (a record finished but not yet committed when its
owner died).

Times are record timestamps in epoch milliseconds. The engine may pass either the wall clock
or the incoming record's timestamp as ``now_ms``; the record timestamp measures "within the TTL"
in event time, which keeps dedupe working for a consumer catching up on an hour-old backlog.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Iterator, Mapping
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
from schemas.topics import HEADER_EVENT_ID

# The seed's Data Store kept idempotency keys for an hour; sender retries and platform
# redeliveries come within minutes, so an hour covers them with room to spare.
DEFAULT_TTL_S: Final = 3600.0
# A hard bound per partition on top of the TTL. At 200 events/s for a whole group the TTL alone
# holds 720,000 ids (~200 MB) on one instance owning every partition; a partition that receives
# more than this within the TTL is under a load the TTL was not sized for, and its oldest ids
# (the least likely to be retried) go first rather than the process running out of memory.
DEFAULT_MAX_IDS_PER_PARTITION: Final = 500_000

PartitionKey = tuple[str, int]


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
        self, ttl_s: float = DEFAULT_TTL_S, max_ids: int = DEFAULT_MAX_IDS_PER_PARTITION
    ) -> None:
        _check_limits(ttl_s, max_ids)
        self._ttl_ms = round(ttl_s * 1000)
        self._max_ids = max_ids
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
        """True if ``event_id`` was finished with a timestamp less than a TTL before ``now_ms``."""
        self._expire(now_ms)
        timestamp = self._timestamps.get(event_id)
        return timestamp is not None and now_ms - timestamp < self._ttl_ms

    def remember(self, event_id: str, timestamp_ms: int) -> None:
        """Note ``event_id`` as finished; a later timestamp for a known id refreshes it."""
        known = self._timestamps.get(event_id)
        if known is None or timestamp_ms > known:
            self._timestamps[event_id] = timestamp_ms
            heapq.heappush(self._expiry, (timestamp_ms, event_id))
        self._expire(timestamp_ms)

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
    ) -> None:
        # Checked here too, so a bad setting fails at start-up rather than at the first record.
        _check_limits(ttl_s, max_ids_per_partition)
        self._ttl_s = ttl_s
        self._max_ids = max_ids_per_partition
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
            state = self._partitions[key] = PartitionDedupe(self._ttl_s, self._max_ids)
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
    since_ms: int,
    timeout_s: float = 30.0,
    codec: EventCodec | None = None,
    consumer_config: Mapping[str, object] | None = None,
) -> dict[str, int]:
    """Event id -> record timestamp (ms) of the records in ``[since_ms, until_offset)``.

    ``until_offset`` is the partition's committed offset: everything before it was finished
    (written or dead-lettered); pass nothing below 1 unless the range is meant to be empty.
    Reading starts at the first record with a timestamp at or after ``since_ms`` (records that
    are older anyway are skipped). The id comes from the ``event-id`` header, else from the
    decoded value (``codec``, default: single-object Avro only, so pass the engine's codec when a
    schema registry is in use); records with neither were poison and are skipped. Replayed
    records (header :data:`~schemas.topics.HEADER_REPLAY_COUNT`) count like any other: they were
    finished too; it is only at processing time that a replayed record bypasses dedupe.

    Blocking: call it from a worker thread. It reads with a standalone consumer (see
    :mod:`consumer.partition_reader`), so it touches no consumer group. Raises
    :class:`DedupeRebuildError` (with what was read so far) when the broker cannot be read within
    ``timeout_s``. ``consumer_config`` adds client settings (security, for example).
    """
    if until_offset <= 0:
        return {}
    deadline = time.monotonic() + timeout_s
    codec = codec or EventCodec(topic)
    consumer = standalone_consumer(clients, "segstream-dedupe-rebuild", consumer_config)
    finished: dict[str, int] = {}
    try:
        start, end = _offset_range(
            consumer,
            topic,
            partition,
            until_offset=until_offset,
            since_ms=since_ms,
            deadline=deadline,
        )
        for message in read_range(
            consumer, topic, partition, start=start, end=end, deadline=deadline
        ):
            _note(finished, message, codec, since_ms)
    except PartitionReadError as exc:
        raise DedupeRebuildError(str(exc), finished) from exc
    finally:
        consumer.close()
    return finished


def _offset_range(
    consumer: Consumer,
    topic: str,
    partition: int,
    *,
    until_offset: int,
    since_ms: int,
    deadline: float,
) -> tuple[int, int]:
    """First offset at or after ``since_ms``, and the end of what there is to read."""
    where = f"{topic}[{partition}]"
    _, high = watermarks(consumer, topic, partition, deadline)
    try:
        [found] = consumer.offsets_for_times(
            [TopicPartition(topic, partition, since_ms)],
            timeout=max(deadline - time.monotonic(), 0.001),
        )
    except KafkaException as exc:
        raise PartitionReadError(f"cannot locate {where}: {exc}") from exc
    if found.error is not None:
        raise PartitionReadError(f"cannot locate {where}: {found.error}")
    end = min(until_offset, high)
    # OFFSET_END: no record at or after since_ms, the whole partition is older than the TTL.
    start = end if found.offset == OFFSET_END else found.offset
    return start, end


def _note(finished: dict[str, int], message: Message, codec: EventCodec, since_ms: int) -> None:
    kind, timestamp = message.timestamp()
    if not kind or timestamp < 0:
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
