"""Dedupe by event id: TTL, partitions kept apart, bounded memory, one clock (record time).

Rebuilding the history from the log is in test_dedupe_rebuild.py."""

from __future__ import annotations

import pytest

from consumer.dedupe import DedupeIndex, PartitionDedupe
from consumer.errors import ConfigurationError
from schemas.model import MAX_CLOCK_SKEW_S
from support.clock import FakeTime

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


# --- one clock: record timestamps, bounded by the wall clock -----------------------------------

DAY_MS = 24 * HOUR_MS
SKEW_MS = MAX_CLOCK_SKEW_S * 1000


def test_a_backlog_twice_the_ttl_old_is_deduped_like_a_live_stream() -> None:
    """The wall clock is two TTLs past every record: it plays no part in the decision."""
    wall = FakeTime(start=(T0 + 2 * HOUR_MS) / 1000)
    dedupe = PartitionDedupe(ttl_s=3600, wall_clock=wall)
    dedupe.remember("e-1", T0)
    assert dedupe.is_duplicate("e-1", T0 + 59 * 60_000)
    assert not dedupe.is_duplicate("e-1", T0 + HOUR_MS)
    wall.now += 3 * 3600  # the consumer keeps falling behind: same answers
    dedupe.remember("e-2", T0 + HOUR_MS)
    assert dedupe.is_duplicate("e-2", T0 + HOUR_MS + 1_000)


def test_one_future_dated_record_does_not_switch_dedupe_off() -> None:
    """A producer stamped one record 30 days ahead: it moves stream time by at most the
    allowed skew, so the ids around it stay remembered for their TTL."""
    wall = FakeTime(start=T0 / 1000)
    dedupe = PartitionDedupe(ttl_s=3600, wall_clock=wall)
    dedupe.remember("before", T0 - 60_000)
    dedupe.remember("from-the-future", T0 + 30 * DAY_MS)
    dedupe.remember("after", T0 + 1_000)
    wall.now += 60
    assert dedupe.is_duplicate("before", T0 + 60_000)
    assert dedupe.is_duplicate("after", T0 + 61_000)
    assert dedupe.is_duplicate("from-the-future", T0 + 61_000)
    assert dedupe.size == 3


def test_a_future_dated_id_is_kept_for_a_ttl_of_the_bound_not_of_its_claim() -> None:
    wall = FakeTime(start=T0 / 1000)
    dedupe = PartitionDedupe(ttl_s=3600, wall_clock=wall)
    dedupe.remember("from-the-future", T0 + 30 * DAY_MS)  # taken as T0 + the skew
    wall.now += 2 * 3600
    assert dedupe.is_duplicate("from-the-future", T0 + SKEW_MS + HOUR_MS - 1)
    assert not dedupe.is_duplicate("from-the-future", T0 + SKEW_MS + HOUR_MS)
    assert dedupe.size == 0


def test_the_index_passes_its_wall_clock_to_every_partition() -> None:
    wall = FakeTime(start=T0 / 1000)
    index = DedupeIndex(ttl_s=3600, wall_clock=wall)
    index.remember("orders", 0, "before", T0)
    index.remember("orders", 0, "from-the-future", T0 + 30 * DAY_MS)
    assert index.is_duplicate("orders", 0, "before", T0 + 1_000)
