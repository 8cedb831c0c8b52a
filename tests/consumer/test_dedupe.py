"""Dedupe by event id: TTL, partitions kept apart, bounded memory, and rebuilding from the log."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from confluent_kafka import KafkaError, Message, Producer

from consumer.clients import KafkaClients
from consumer.dedupe import (
    DedupeIndex,
    DedupeRebuildError,
    PartitionDedupe,
    rebuild_partition,
)
from consumer.errors import ConfigurationError, ConsumerError
from schemas.codec import EventCodec
from schemas.model import InteractionCompleted
from schemas.topics import HEADER_EVENT_ID, HEADER_REPLAY_COUNT
from support.kafka import TopicFactory

HOUR_MS = 3_600_000
T0 = 1_764_000_000_000  # some instant in epoch ms


# --- one partition -------------------------------------------------------------------------------


def test_an_id_is_a_duplicate_for_one_ttl_after_its_timestamp() -> None:
    dedupe = PartitionDedupe(ttl_s=3600)
    dedupe.remember("e-1", T0)
    assert dedupe.is_duplicate("e-1", T0)
    assert dedupe.is_duplicate("e-1", T0 + HOUR_MS - 1)
    assert not dedupe.is_duplicate("e-1", T0 + HOUR_MS)
    assert not dedupe.is_duplicate("e-2", T0)


def test_the_default_ttl_is_one_hour() -> None:
    dedupe = PartitionDedupe()
    dedupe.remember("e-1", T0)
    assert dedupe.is_duplicate("e-1", T0 + HOUR_MS - 1)
    assert not dedupe.is_duplicate("e-1", T0 + HOUR_MS)


def test_an_original_stamped_after_now_still_counts() -> None:
    """Two bridge instances' clocks differ a little: the copy may carry the earlier time."""
    dedupe = PartitionDedupe(ttl_s=3600)
    dedupe.remember("e-1", T0 + 2_000)
    assert dedupe.is_duplicate("e-1", T0)


def test_remembering_again_later_extends_the_window() -> None:
    dedupe = PartitionDedupe(ttl_s=3600)
    dedupe.remember("e-1", T0)
    dedupe.remember("e-1", T0 + 50 * 60_000)
    dedupe.remember("e-1", T0 + 10 * 60_000)  # an older copy does not shorten it
    assert dedupe.is_duplicate("e-1", T0 + 100 * 60_000)
    assert len(dedupe) == 1


def test_ids_older_than_the_ttl_are_dropped_from_memory() -> None:
    dedupe = PartitionDedupe(ttl_s=3600)
    for second in range(2 * 3600):  # one id per second for two hours
        dedupe.remember(f"e-{second}", T0 + second * 1000)
    assert dedupe.size == 3600
    assert "e-3599" not in dedupe
    assert "e-3600" in dedupe


def test_lookups_move_expiry_forward_too() -> None:
    dedupe = PartitionDedupe(ttl_s=60)
    for number in range(100):
        dedupe.remember(f"e-{number}", T0)
    assert not dedupe.is_duplicate("new", T0 + 60_000)
    assert dedupe.size == 0


def test_a_refreshed_id_survives_the_expiry_of_its_first_timestamp() -> None:
    dedupe = PartitionDedupe(ttl_s=3600)
    dedupe.remember("e-1", T0)
    dedupe.remember("e-1", T0 + 50 * 60_000)
    dedupe.remember("e-2", T0 + 70 * 60_000)  # pushes T0 out of the window
    assert "e-1" in dedupe
    assert dedupe.is_duplicate("e-1", T0 + 70 * 60_000)


def test_a_partition_holds_at_most_its_bound_dropping_the_oldest() -> None:
    dedupe = PartitionDedupe(ttl_s=3600, max_ids=100)
    for number in range(150):
        dedupe.remember(f"e-{number}", T0 + number)
    assert dedupe.size == 100
    assert "e-49" not in dedupe
    assert "e-50" in dedupe
    assert dedupe.is_duplicate("e-149", T0 + 150)


@pytest.mark.parametrize(("ttl_s", "max_ids"), [(-1.0, 10), (3600.0, 0)])
def test_limits_that_cannot_work_are_refused(ttl_s: float, max_ids: int) -> None:
    with pytest.raises(ConfigurationError):
        PartitionDedupe(ttl_s, max_ids)
    with pytest.raises(ConfigurationError):
        DedupeIndex(ttl_s, max_ids)


# --- the index over partitions -------------------------------------------------------------------


def test_partitions_are_kept_apart() -> None:
    index = DedupeIndex(ttl_s=3600)
    index.remember("orders", 0, "e-1", T0)
    assert index.is_duplicate("orders", 0, "e-1", T0 + 1)
    assert not index.is_duplicate("orders", 1, "e-1", T0 + 1)
    assert not index.is_duplicate("returns", 0, "e-1", T0 + 1)
    assert index.sizes() == {("orders", 0): 1}


def test_a_dropped_partition_forgets_its_ids_and_only_its_own() -> None:
    index = DedupeIndex(ttl_s=3600)
    index.remember("orders", 0, "e-1", T0)
    index.remember("orders", 1, "e-2", T0)
    index.drop_partition("orders", 0)
    index.drop_partition("orders", 7)  # never owned: nothing to do

    assert not index.is_duplicate("orders", 0, "e-1", T0 + 1)
    assert index.size("orders", 0) == 0
    assert index.is_duplicate("orders", 1, "e-2", T0 + 1)
    assert list(index) == [("orders", 1)]


def test_a_rebuilt_history_is_loaded_into_its_partition() -> None:
    index = DedupeIndex(ttl_s=3600)
    index.load_partition("orders", 3, {"e-2": T0 + 5, "e-1": T0, "e-3": T0 - 2 * HOUR_MS})
    assert index.is_duplicate("orders", 3, "e-1", T0 + 10)
    assert index.is_duplicate("orders", 3, "e-2", T0 + 10)
    assert not index.is_duplicate("orders", 3, "e-3", T0 + 10)
    assert index.size("orders", 3) == 2


# --- rebuilding from the partition ---------------------------------------------------------------


def test_an_unreachable_broker_fails_within_the_timeout() -> None:
    started = time.monotonic()
    with pytest.raises(DedupeRebuildError) as caught:
        rebuild_partition(
            KafkaClients("127.0.0.1:1"), "t", 0, until_offset=10, since_ms=0, timeout_s=1.0
        )
    assert time.monotonic() - started < 5.0
    assert isinstance(caught.value, ConsumerError)
    assert caught.value.partial == {}


def test_nothing_committed_means_nothing_to_read() -> None:
    # No broker is contacted at all: the address is never dialled.
    assert rebuild_partition(KafkaClients("127.0.0.1:1"), "t", 0, until_offset=0, since_ms=0) == {}


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
        since_ms=since,
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
        since_ms=now - HOUR_MS,
        timeout_s=30,
    )
    assert sorted(ids) == ["in-txn-0", "in-txn-1", "in-txn-2"]


@pytest.mark.kafka
def test_empty_ranges_come_back_empty_without_waiting(
    kafka_bootstrap: str, topics: TopicFactory
) -> None:
    topic = topics.create("dedupe-empty", partitions=2)
    now = int(time.time() * 1000)
    produce(
        kafka_bootstrap,
        topic,
        [(0, f"old-{n}", b"x", now - 2 * HOUR_MS + n, False) for n in range(5)]
        + [(0, "recent", b"x", now - 1_000, False)],
    )
    cases = [
        ("every record older than the window", 0, 6, now),
        ("committed before the window starts", 0, 5, now - 60_000),
        ("a partition with no records", 1, 3, now - HOUR_MS),
    ]
    for name, partition, until_offset, since_ms in cases:
        started = time.monotonic()
        ids = rebuild_partition(
            KafkaClients(kafka_bootstrap),
            topic,
            partition,
            until_offset=until_offset,
            since_ms=since_ms,
            timeout_s=20,
        )
        assert ids == {}, name
        assert time.monotonic() - started < 5.0, name
