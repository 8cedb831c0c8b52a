"""The in-flight count and what it decides: how much to fetch, when to pause everything."""

from __future__ import annotations

import asyncio

from consumer.processing.flow import HARD_LIMIT_FACTOR, InFlight


class Seen:
    def __init__(self) -> None:
        self.counts: list[int] = []

    def in_flight(self, count: int) -> None:
        self.counts.append(count)


async def test_room_is_what_the_bound_leaves() -> None:
    flow = InFlight(10, Seen())
    for _ in range(7):
        flow.fetched()
    assert await flow.room() == 3


async def test_at_the_bound_room_waits_for_a_record_to_finish() -> None:
    flow = InFlight(3, Seen())
    for _ in range(3):
        flow.fetched()
    waiting = asyncio.ensure_future(flow.room())
    await asyncio.sleep(0)
    assert not waiting.done()
    flow.finished()
    assert await asyncio.wait_for(waiting, 0.5) == 1


async def test_the_hard_limit_pauses_everything_until_back_under_the_bound() -> None:
    seen = Seen()
    flow = InFlight(10, seen)
    held = frozenset({("t", 3)})
    for _ in range(10 * HARD_LIMIT_FACTOR - 1):
        flow.fetched()
    flow.update()
    assert flow.wish(held) == (False, held)
    flow.fetched()
    flow.update()
    assert flow.wish(held) == (True, held)
    for _ in range(10):  # 10 left: at the bound, still paused (no flapping at the edge)
        flow.finished()
    flow.update()
    assert flow.wish(held)[0] is True
    flow.finished()
    flow.update()
    assert flow.wish(held) == (False, held)
    assert seen.counts[-1] == 9


async def test_an_unusable_sink_pauses_everything_whatever_the_count() -> None:
    flow = InFlight(10, Seen())
    flow.sink_unusable(True)
    assert flow.wish(frozenset())[0] is True
    flow.sink_unusable(False)
    assert flow.wish(frozenset())[0] is False


async def test_dropped_records_leave_the_count() -> None:
    flow = InFlight(10, Seen())
    for _ in range(10):
        flow.fetched()
    flow.dropped(4)
    assert flow.count == 6
    assert await flow.room() == 4
