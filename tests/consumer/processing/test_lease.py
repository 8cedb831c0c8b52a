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


class Group:
    """What the broker says to a confirmation commit, one answer per poll."""

    def __init__(self, *answers: bool | None) -> None:
        self.answers = list(answers)
        self.asked = 0

    def __call__(self) -> bool | None:
        self.asked += 1
        return self.answers.pop(0)


def test_regular_polls_never_ask_the_group() -> None:
    clock, group = Clock(), Group()
    lease = WriteLease(validity_s=3.0, grace_s=2.0, clock=clock)
    for _ in range(10):
        clock.now += 1.0
        lease.renew(group)
    assert group.asked == 0
    assert lease.valid()


def test_after_a_freeze_writes_wait_for_the_group_however_long_the_loss_takes_to_report() -> None:
    # A loaded machine: the loss is reported long after any grace would have ended. The group
    # refuses the member's commit meanwhile, so writes stay held.
    clock = Clock()
    group = Group(*[False] * 20)
    lease = WriteLease(validity_s=3.0, grace_s=2.0, clock=clock)
    clock.now += 60.0
    for _ in range(20):
        lease.renew(group)
        assert not lease.valid()
        clock.now += 1.0
    assert group.asked == 20


def test_a_member_the_group_still_counts_writes_again_at_once() -> None:
    # Frozen past the validity but not past the session: the group takes the commit.
    clock, group = Clock(), Group(True)
    lease = WriteLease(validity_s=3.0, grace_s=2.0, clock=clock)
    clock.now += 4.0
    lease.renew(group)
    assert lease.valid()
    clock.now += 1.0
    lease.renew(group)
    assert group.asked == 1  # confirmed once, not at every poll


def test_when_the_group_cannot_tell_the_grace_decides() -> None:
    clock, group = Clock(), Group(None)
    lease = WriteLease(validity_s=3.0, grace_s=2.0, clock=clock)
    clock.now += 60.0
    lease.renew(group)
    assert not lease.valid()
    clock.now += 2.1
    lease.renew(group)
    assert lease.valid()


def test_a_revoked_lease_never_comes_back() -> None:
    # The client failed fatally (fenced): whatever the polls or the group say, nothing is sent.
    clock, group = Clock(), Group(True)
    lease = WriteLease(validity_s=3.0, grace_s=2.0, clock=clock)
    lease.revoke()
    for _ in range(5):
        clock.now += 1.0
        lease.renew(group)
        assert not lease.valid()
