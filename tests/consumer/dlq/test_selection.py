"""Filters: what the command line accepts, and which dead letters each one selects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from confluent_kafka import Message

from consumer.dlq.records import DeadLetter
from consumer.dlq.selection import OffsetRange, Selection, SelectionError, parse_time

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def dead_letter(
    *,
    key: bytes = b"C-1",
    error_class: str = "SinkRejectedError",
    stage: str = "sink",
    failed: datetime = NOW,
    origin: tuple[int, int] | None = (3, 150),
) -> DeadLetter:
    headers = [
        ("segstream.dlq.error.class", error_class.encode()),
        ("segstream.dlq.stage", stage.encode()),
        ("segstream.dlq.last.failure", failed.isoformat().encode()),
    ]
    if origin is not None:
        headers += [
            ("segstream.dlq.topic", b"interactions.completed.v1"),
            ("segstream.dlq.partition", str(origin[0]).encode()),
            ("segstream.dlq.offset", str(origin[1]).encode()),
        ]
    message = Message(topic="dlq", partition=0, offset=7, key=key, value=b"v", headers=headers)
    return DeadLetter.from_message(message)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-28T09:00:00Z", datetime(2026, 11, 28, 9, tzinfo=UTC)),
        ("2026-11-28T10:00:00+01:00", datetime(2026, 11, 28, 9, tzinfo=UTC)),
        ("2026-11-28", datetime(2026, 11, 28, tzinfo=UTC)),
        ("90m", NOW - timedelta(minutes=90)),
        ("2h", NOW - timedelta(hours=2)),
        ("1d", NOW - timedelta(days=1)),
        ("30s", NOW - timedelta(seconds=30)),
    ],
)
def test_times_are_iso_dates_or_durations_back_from_now(text: str, expected: datetime) -> None:
    assert parse_time(text, NOW) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [("2026-11-28T09:00:00", "time zone"), ("yesterday", "ISO-8601"), ("5w", "ISO-8601")],
)
def test_unclear_times_are_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(SelectionError, match=message):
        parse_time(text, NOW)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3", OffsetRange(3)),
        ("3:100-200", OffsetRange(3, 100, 200)),
        ("3:100-", OffsetRange(3, 100, None)),
        ("3:-200", OffsetRange(3, None, 200)),
    ],
)
def test_partition_ranges(text: str, expected: OffsetRange) -> None:
    assert OffsetRange.parse(text) == expected
    assert str(expected) == text


@pytest.mark.parametrize("text", ["", "x", "3:", "3:200-100", "-1", "3:1-2-3"])
def test_bad_partition_ranges_are_refused(text: str) -> None:
    with pytest.raises(SelectionError, match="--partition"):
        OffsetRange.parse(text)


def test_no_filter_selects_everything() -> None:
    selection = Selection()
    assert selection.is_everything
    assert selection.matches(dead_letter(origin=None))


def test_each_filter_narrows_and_repeats_widen() -> None:
    record = dead_letter()
    assert Selection(error_classes=frozenset({"SinkRejectedError", "X"})).matches(record)
    assert not Selection(error_classes=frozenset({"EventDecodeError"})).matches(record)
    assert Selection(stages=frozenset({"sink"})).matches(record)
    assert not Selection(stages=frozenset({"decode", "validate"})).matches(record)
    assert Selection(keys=frozenset({"C-1", "C-2"})).matches(record)
    assert not Selection(keys=frozenset({"C-2"})).matches(record)
    assert Selection(since=NOW, until=NOW + timedelta(seconds=1)).matches(record)
    assert not Selection(since=NOW + timedelta(seconds=1)).matches(record)
    assert not Selection(until=NOW).matches(record)  # until excludes
    assert Selection(partitions=(OffsetRange(3, 100, 150),)).matches(record)
    assert not Selection(partitions=(OffsetRange(3, 151),)).matches(record)
    assert Selection(partitions=(OffsetRange(1), OffsetRange(3))).matches(record)
    assert not Selection(partitions=(OffsetRange(3),)).matches(dead_letter(origin=None))
    both = Selection(error_classes=frozenset({"SinkRejectedError"}), keys=frozenset({"C-9"}))
    assert not both.matches(record)


def test_contradictory_filters_are_refused() -> None:
    with pytest.raises(SelectionError, match="--since must be before --until"):
        Selection(since=NOW, until=NOW)
    with pytest.raises(SelectionError, match="--stage"):
        Selection(stages=frozenset({"transform"}))


def test_the_audit_shape_counts_keys_and_never_names_them() -> None:
    described = Selection(keys=frozenset({"C-1", "C-2"}), partitions=(OffsetRange(3, 1, 2),))
    assert described.describe() == {
        "error_class": [],
        "stage": [],
        "since": None,
        "until": None,
        "keys": 2,
        "partition": ["3:1-2"],
    }
