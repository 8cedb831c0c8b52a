"""The write lease: valid while polls keep coming, suspended for a grace after a freeze."""

from __future__ import annotations

import asyncio

import pytest

from consumer.processing.lease import WriteLease
from support.clock import FakeTime


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_regular_polls_keep_the_lease_valid() -> None:
    clock = Clock()
    lease = WriteLease(validity_s=3.0, grace_s=2.0, clock=clock)
    for _ in range(10):
        clock.now += 1.0
        lease.renew()
        assert lease.valid()


def test_without_polls_the_lease_lapses() -> None:
    clock = Clock()
    lease = WriteLease(validity_s=3.0, grace_s=2.0, clock=clock)
    clock.now += 3.5
    assert not lease.valid()


def test_after_a_freeze_the_first_poll_does_not_restore_it_at_once() -> None:
    clock = Clock()
    lease = WriteLease(validity_s=3.0, grace_s=2.0, clock=clock)
    clock.now += 60.0  # frozen for a minute; the group has moved on
    lease.renew()
    assert not lease.valid()  # the loss has not been reported yet
    clock.now += 1.0
    lease.renew()
    assert not lease.valid()
    clock.now += 1.0
    lease.renew()
    assert lease.valid()


async def test_held_waits_while_the_lease_is_suspended_and_returns_once_it_is_valid() -> None:
    clock = FakeTime()
    lease = WriteLease(validity_s=3.0, grace_s=2.0, clock=clock, sleep=clock.sleep)
    await clock.advance(60.0)  # frozen for a minute: no poll renewed the lease
    waiter = asyncio.ensure_future(lease.held())
    await clock.advance(1.0)
    assert not waiter.done()
    lease.renew()  # the first poll after the freeze suspends writes for the grace
    await clock.advance(1.9)
    lease.renew()
    assert not waiter.done()
    await clock.advance(0.2)  # the grace is over and polls keep coming
    lease.renew()
    await clock.advance(0.1)
    assert waiter.done()


async def test_a_waiter_on_a_lapsed_lease_can_be_cancelled() -> None:
    clock = FakeTime()
    lease = WriteLease(validity_s=3.0, grace_s=2.0, clock=clock, sleep=clock.sleep)
    await clock.advance(10.0)
    waiter = asyncio.ensure_future(lease.held())
    await clock.advance(5.0)
    assert not waiter.done()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
