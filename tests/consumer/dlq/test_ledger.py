"""The replay group's record of handled dead letters: low-water mark + ranges in the metadata."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumer.dlq.ledger import LedgerError, PartitionLedger, decode_ranges, encode_ranges


def test_nothing_committed_starts_at_zero_with_nothing_handled() -> None:
    ledger = PartitionLedger.from_commit(None, None)
    assert ledger.low == 0
    assert ledger.commit() == (0, "")
    assert not ledger.is_done(0)


def test_handling_in_order_moves_the_committed_offset_and_needs_no_metadata() -> None:
    ledger = PartitionLedger.from_commit(5, "")
    for offset in range(5, 9):
        ledger.mark(offset)
    assert ledger.commit() == (9, "")


def test_a_record_left_alone_holds_the_offset_and_what_follows_is_listed() -> None:
    ledger = PartitionLedger.from_commit(0, "")
    for offset in (0, 1, 3, 4, 7):  # 2, 5 and 6 were not selected
        ledger.mark(offset)
    offset, metadata = ledger.commit()
    assert offset == 2
    assert metadata.startswith("v1:")
    again = PartitionLedger.from_commit(offset, metadata)
    assert [o for o in range(10) if again.is_done(o)] == [0, 1, 3, 4, 7]
    # A later run with other filters handles what the first left alone: the mark catches up.
    again.mark(2)
    again.mark(5)
    again.mark(6)
    assert again.commit() == (8, "")


def test_metadata_another_tool_wrote_is_refused_not_guessed() -> None:
    with pytest.raises(LedgerError, match="not written by segstream-dlq"):
        PartitionLedger.from_commit(3, "some-other-tool:42")
    with pytest.raises(LedgerError, match="corrupt"):
        PartitionLedger.from_commit(3, "v1:!!!")


def test_gaps_in_the_log_count_as_handled() -> None:
    ledger = PartitionLedger.from_commit(10, "")
    ledger.mark_range(10, 12)  # no records there (a transaction marker, compaction)
    ledger.mark(13)
    assert ledger.commit()[0] == 12
    ledger.advance_to(20)  # retention deleted everything before 20
    assert ledger.commit() == (20, "")


@given(
    st.integers(min_value=0, max_value=10**12),
    st.sets(st.integers(min_value=0, max_value=2_000), max_size=300),
)
def test_any_set_of_handled_offsets_survives_the_commit(low: int, marked: set[int]) -> None:
    ledger = PartitionLedger.from_commit(low, "")
    for relative in marked:
        ledger.mark(low + relative)
    again = PartitionLedger.from_commit(*ledger.commit())
    for relative in range(2_100):
        assert again.is_done(low + relative) == (relative in marked or low + relative < again.low)
    assert again.commit() == ledger.commit()


@given(st.lists(st.tuples(st.integers(0, 50), st.integers(1, 50)), max_size=50))
def test_range_encoding_round_trips(gaps_and_lengths: list[tuple[int, int]]) -> None:
    ranges = []
    position = 100
    for gap, length in gaps_and_lengths:
        start = position + gap + 1
        ranges.append((start, start + length))
        position = start + length
    assert decode_ranges(100, encode_ranges(100, ranges)) == ranges


@pytest.mark.parametrize(("gap", "at_least"), [((2, 40), 1_500), ((200, 2_000), 1_000)])
def test_marking_stops_before_the_metadata_outgrows_kafkas_limit(
    gap: tuple[int, int], at_least: int
) -> None:
    rng = random.Random(3)
    ledger = PartitionLedger.from_commit(0, "")
    offset = 1  # offset 0 is never handled: every later record becomes a listed range
    while True:
        offset += rng.randint(*gap)
        if not ledger.mark_within(offset, 4096):
            assert not ledger.is_done(offset)  # refused: not marked
            break
    assert len(ledger.commit()[1].encode()) <= 4096
    # The documented capacity: 1,500 ranges with short gaps, 1,000 with long ones.
    assert len(ledger.ranges) >= at_least
