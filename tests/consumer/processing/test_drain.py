"""finish_writes: writes on the wire finish within the grace; nothing starts a new write."""

from __future__ import annotations

import asyncio
import time

from consumer.processing.drain import finish_writes


class Record:
    def __init__(self) -> None:
        self.writing = False
        self.writes_started = 0
        self.writes_finished = 0


async def write_then_retry_forever(record: Record, write_s: float) -> None:
    """A write, then (as when the breaker stays open) a wait and another write, forever."""
    while True:
        record.writing, record.writes_started = True, record.writes_started + 1
        await asyncio.sleep(write_s)
        record.writing, record.writes_finished = False, record.writes_finished + 1
        await asyncio.sleep(0.01)  # the retry delay: short, so a new write would start in it


async def test_a_write_finishes_and_no_new_write_starts_during_the_grace() -> None:
    record = Record()
    task = asyncio.create_task(write_then_retry_forever(record, write_s=0.1))
    await asyncio.sleep(0)  # the write is on the wire
    started = time.monotonic()
    await finish_writes({task: record}, lambda r: r.writing, grace_s=10.0)
    assert time.monotonic() - started < 2.0  # not the whole grace
    assert (record.writes_started, record.writes_finished) == (1, 1)
    assert task.cancelled()


async def test_a_record_that_is_only_waiting_is_cancelled_at_once() -> None:
    record = Record()
    waiting = asyncio.create_task(asyncio.sleep(60))
    started = time.monotonic()
    await finish_writes({waiting: record}, lambda r: r.writing, grace_s=10.0)
    assert time.monotonic() - started < 1.0
    assert waiting.cancelled()


async def test_a_write_longer_than_the_grace_is_abandoned() -> None:
    record = Record()
    task = asyncio.create_task(write_then_retry_forever(record, write_s=60))
    await asyncio.sleep(0)
    started = time.monotonic()
    await finish_writes({task: record}, lambda r: r.writing, grace_s=0.2)
    assert 0.2 <= time.monotonic() - started < 2.0
    assert (record.writes_started, record.writes_finished) == (1, 0)
    assert task.cancelled()


async def test_no_grace_cancels_writes_too() -> None:
    record = Record()
    task = asyncio.create_task(write_then_retry_forever(record, write_s=60))
    await asyncio.sleep(0)
    await finish_writes({task: record}, lambda r: r.writing, grace_s=0.0)
    assert task.cancelled()
    assert record.writes_finished == 0
