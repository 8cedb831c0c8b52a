"""The write lease: valid while polls keep coming, suspended for a grace after a freeze."""

from __future__ import annotations

import asyncio

import pytest

from consumer.processing.lease import WriteLease


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


async def test_held_waits_until_valid_and_is_cancellable() -> None:
    lease = WriteLease(validity_s=0.0, grace_s=0.0)
    waiter = asyncio.create_task(lease.held())
    await asyncio.sleep(0.06)
    assert not waiter.done()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
