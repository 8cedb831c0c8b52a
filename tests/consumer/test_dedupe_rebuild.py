"""Rebuilding a partition's dedupe history from the partition itself, against the real broker.

The window is the TTL before the partition's stream time at the committed offset (the newest
record timestamp there, bounded by the wall clock), read newest first.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from confluent_kafka import KafkaError, Message, Producer

from consumer.clients import KafkaClients
from consumer.dedupe import DedupeRebuildError, rebuild_partition
from consumer.errors import ConsumerError
from schemas.codec import EventCodec
from schemas.model import MAX_CLOCK_SKEW_S, InteractionCompleted
from schemas.topics import HEADER_EVENT_ID, HEADER_REPLAY_COUNT
from support.kafka import TopicFactory

HOUR_MS = 3_600_000


def test_an_unreachable_broker_fails_within_the_timeout() -> None:
    started = time.monotonic()
    with pytest.raises(DedupeRebuildError) as caught:
        rebuild_partition(
            KafkaClients("127.0.0.1:1"), "t", 0, until_offset=10, ttl_s=3600, timeout_s=1.0
        )
    assert time.monotonic() - started < 5.0
    assert isinstance(caught.value, ConsumerError)
    assert caught.value.partial == {}


def test_nothing_committed_means_nothing_to_read() -> None:
    # No broker is contacted at all: the address is never dialled.
    assert rebuild_partition(KafkaClients("127.0.0.1:1"), "t", 0, until_offset=0, ttl_s=3600) == {}


def event_bytes(event_id: str) -> bytes:
    event = InteractionCompleted(
        event_id=event_id,
        customer_id="C-1",
        contact_id="contact-1",
        channel="voice",
        started_at=datetime(2026, 11, 28, 10, 15, tzinfo=UTC),
        completed_at=datetime(2026, 11, 28, 10, 21, tzinfo=UTC),
        tags=[],
    )
    return EventCodec("interactions").encode(event)


def produce(bootstrap: str, topic: str, records: list[tuple[int, str, bytes, int, bool]]) -> int:
    """(partition, event id or "", value, timestamp, replayed) each, in order; returns the
    offset after the last record written to partition 0 (what a commit after it would be)."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    written: list[tuple[int, int]] = []

    def delivered(error: KafkaError | None, message: Message) -> None:
        assert error is None, error
        written.append((message.partition() or 0, message.offset() or 0))

    for partition, event_id, value, timestamp, replayed in records:
        headers: list[tuple[str, str | bytes | None]] = []
        if event_id:
            headers.append((HEADER_EVENT_ID, event_id.encode()))
        if replayed:
            headers.append((HEADER_REPLAY_COUNT, b"1"))
        producer.produce(
            topic,
            value=value,
            key=b"C-1",
            partition=partition,
            timestamp=timestamp,
            headers=headers,
            on_delivery=delivered,
        )
    assert producer.flush(30) == 0
    assert len(written) == len(records)
    return max((offset + 1 for partition, offset in written if partition == 0), default=0)


@pytest.mark.kafka
def test_rebuild_returns_exactly_the_finished_ids_within_the_window(
    kafka_bootstrap: str, topics: TopicFactory
) -> None:
    topic = topics.create("dedupe-rebuild", partitions=2)
    # The last finished record (kept-2) is stamped since + 6 s: with a 6 s TTL the window starts
    # at since.
    since = int(time.time() * 1000) - 10 * 60_000
    header_only = b"opaque bytes: the header is enough"
    finished = [
        (0, "too-old", header_only, since - 60_000, False),  # offset 0: before the window
        (0, "kept-1", header_only, since + 1_000, False),
        (0, "", event_bytes("from-value"), since + 2_000, False),  # no header: read the value
        (0, "", b"\x00\x00garbage", since + 3_000, False),  # neither: poison, skipped
        (0, "replayed", header_only, since + 4_000, True),  # dead-lettered and replayed
        (0, "late-but-old", header_only, since - 30_000, False),  # in range, stamped too early
        (0, "kept-1", header_only, since + 5_000, False),  # a duplicate that was finished too
        (0, "kept-2", header_only, since + 6_000, False),  # offset 7: the last finished one
        (1, "other-partition", header_only, since + 1_500, False),
    ]
    committed = produce(kafka_bootstrap, topic, finished)
    assert committed == 8
    produce(
        kafka_bootstrap,
        topic,
        [
            (0, "not-finished-yet", header_only, since + 7_000, False),
            (0, "", event_bytes("not-finished-either"), since + 8_000, False),
        ],
    )

    ids = rebuild_partition(
        KafkaClients(kafka_bootstrap),
        topic,
        0,
        until_offset=committed,
        ttl_s=6.0,
        timeout_s=30,
    )

    assert ids == {
        "kept-1": since + 5_000,
        "from-value": since + 2_000,
        "replayed": since + 4_000,
        "kept-2": since + 6_000,
    }


@pytest.mark.kafka
def test_rebuild_stops_at_the_committed_offset_even_after_a_transaction_marker(
    kafka_bootstrap: str, topics: TopicFactory
) -> None:
    """The commit marker of a transaction takes an offset no consumer ever sees; a committed
    offset just past it must still end the read there, not at the next record."""
    topic = topics.create("dedupe-txn", partitions=1)
    now = int(time.time() * 1000)
    producer = Producer(
        {"bootstrap.servers": kafka_bootstrap, "transactional.id": f"{topic}-writer"}
    )
    producer.init_transactions(30)
    producer.begin_transaction()
    for number in range(3):  # offsets 0..2, the commit marker at 3
        producer.produce(
            topic,
            value=b"x",
            partition=0,
            timestamp=now - 1_000 + number,
            headers=[(HEADER_EVENT_ID, f"in-txn-{number}".encode())],
        )
    producer.commit_transaction(30)
    committed = 4
    produce(kafka_bootstrap, topic, [(0, "after-the-marker", b"x", now, False)])  # offset 4

    ids = rebuild_partition(
        KafkaClients(kafka_bootstrap),
        topic,
        0,
        until_offset=committed,
        ttl_s=3600,
        timeout_s=30,
    )
    assert sorted(ids) == ["in-txn-0", "in-txn-1", "in-txn-2"]


@pytest.mark.kafka
def test_a_partition_with_nothing_in_it_comes_back_empty_without_waiting(
    kafka_bootstrap: str, topics: TopicFactory
) -> None:
    topic = topics.create("dedupe-empty", partitions=2)
    produce(kafka_bootstrap, topic, [(0, "elsewhere", b"x", int(time.time() * 1000), False)])
    started = time.monotonic()
    ids = rebuild_partition(
        KafkaClients(kafka_bootstrap), topic, 1, until_offset=3, ttl_s=3600, timeout_s=20
    )
    assert ids == {}
    assert time.monotonic() - started < 5.0


@pytest.mark.kafka
def test_a_consumer_lagging_twice_the_ttl_gets_the_ttl_before_its_commit(
    kafka_bootstrap: str, topics: TopicFactory
) -> None:
    """The window follows the partition's stream time, not the wall clock: with every record
    two hours old and a one-hour TTL, the last hour before the commit still counts."""
    topic = topics.create("dedupe-lag", partitions=1)
    tail = int(time.time() * 1000) - 2 * HOUR_MS
    committed = produce(
        kafka_bootstrap,
        topic,
        [
            (0, "outside", b"x", tail - HOUR_MS - 1, False),
            (0, "inside-oldest", b"x", tail - HOUR_MS + 1_000, False),
            (0, "inside", b"x", tail - 60_000, False),
            (0, "last-finished", b"x", tail, False),
        ],
    )
    ids = rebuild_partition(
        KafkaClients(kafka_bootstrap), topic, 0, until_offset=committed, ttl_s=3600
    )
    assert ids == {
        "inside-oldest": tail - HOUR_MS + 1_000,
        "inside": tail - 60_000,
        "last-finished": tail,
    }


@pytest.mark.kafka
def test_a_future_dated_last_record_moves_the_window_by_the_allowed_skew_at_most(
    kafka_bootstrap: str, topics: TopicFactory
) -> None:
    # Kafka 4 refuses records more than an hour ahead by default; a topic created on an older
    # cluster (or configured so) takes them, and that is the case to survive.
    topic = topics.create(
        "dedupe-future",
        partitions=1,
        config={"message.timestamp.after.max.ms": str(2**63 - 1)},
    )
    now = int(time.time() * 1000)
    committed = produce(
        kafka_bootstrap,
        topic,
        [
            (0, "ten-minutes-ago", b"x", now - 10 * 60_000, False),
            (0, "thirty-days-ahead", b"x", now + 30 * 24 * HOUR_MS, False),
        ],
    )
    ids = rebuild_partition(
        KafkaClients(kafka_bootstrap), topic, 0, until_offset=committed, ttl_s=3600
    )
    assert sorted(ids) == ["ten-minutes-ago", "thirty-days-ahead"]
    assert MAX_CLOCK_SKEW_S * 1000 < 50 * 60_000  # so ten minutes ago stays inside


class SteppingClock:
    """A monotonic clock that moves ``step`` seconds each time it is read: the time budget of a
    rebuild becomes a budget of steps, whatever the machine's speed."""

    def __init__(self, step: float) -> None:
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


@pytest.mark.kafka
def test_a_rebuild_cut_short_keeps_the_newest_ids(
    kafka_bootstrap: str, topics: TopicFactory
) -> None:
    topic = topics.create("dedupe-partial", partitions=1)
    now = int(time.time() * 1000)
    count = 60
    committed = produce(
        kafka_bootstrap,
        topic,
        [(0, f"e-{n:03d}", b"x", now - (count - n) * 1_000, False) for n in range(count)],
    )
    clients = KafkaClients(kafka_bootstrap)
    whole = rebuild_partition(
        clients, topic, 0, until_offset=committed, ttl_s=3600, chunk_offsets=5
    )
    assert len(whole) == count
    with pytest.raises(DedupeRebuildError) as caught:
        rebuild_partition(
            clients, topic, 0, until_offset=committed, ttl_s=3600, chunk_offsets=5,
            timeout_s=12, clock=SteppingClock(1.0),
        )  # fmt: skip
    partial = sorted(caught.value.partial)
    assert 0 < len(partial) < count
    assert partial == sorted(whole)[-len(partial) :]  # the newest, none older missing
