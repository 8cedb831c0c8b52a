"""The commit position never passes an unfinished record, whatever order records finish in."""

from __future__ import annotations

import random

import pytest

from consumer.processing.progress import PartitionProgress


def test_nothing_finished_means_nothing_to_commit() -> None:
    progress = PartitionProgress()
    progress.track(40)
    progress.track(41)
    assert progress.commit_position is None
    assert progress.unfinished == 2


def test_a_slow_record_holds_the_position_while_later_ones_finish() -> None:
    progress = PartitionProgress()
    for offset in range(10, 15):
        progress.track(offset)
    progress.finish(10)
    for later in (12, 13, 14):
        progress.finish(later)
    assert progress.commit_position == 11  # 11 is still running
    assert progress.unfinished == 1  # 12-14 are done: they wait for 11 but are not in flight
    progress.finish(11)
    assert progress.commit_position == 15
    assert progress.unfinished == 0


def test_gaps_in_offsets_do_not_block_the_position() -> None:
    progress = PartitionProgress()
    for offset in (5, 9, 20):  # compaction or transaction markers leave gaps
        progress.track(offset)
    for offset in (20, 5, 9):
        progress.finish(offset)
    assert progress.commit_position == 21


def test_offsets_must_be_tracked_in_fetch_order() -> None:
    progress = PartitionProgress()
    progress.track(7)
    with pytest.raises(ValueError, match="out of order"):
        progress.track(7)


@pytest.mark.parametrize("seed", range(20))
def test_any_finish_order_gives_the_lowest_unfinished(seed: int) -> None:
    rng = random.Random(seed)
    offsets = list(range(100, 160))
    progress = PartitionProgress()
    for offset in offsets:
        progress.track(offset)
    order = offsets[:]
    rng.shuffle(order)
    finished: set[int] = set()
    for offset in order:
        progress.finish(offset)
        finished.add(offset)
        unfinished = [o for o in offsets if o not in finished]
        expected = unfinished[0] if unfinished else offsets[-1] + 1
        if 100 not in finished:
            assert progress.commit_position is None
        else:
            assert progress.commit_position == expected
