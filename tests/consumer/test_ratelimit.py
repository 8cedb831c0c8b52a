"""The group rate limiter, driven by a fake clock: shares, token accounting, 429s, AIMD."""

from __future__ import annotations

import asyncio
import math
import time

import pytest

from consumer.errors import ConfigurationError, ConsumerError
from consumer.ratelimit import (
    DEFAULT_THROTTLE_PAUSE_S,
    MAX_THROTTLE_PAUSE_S,
    GroupRateLimiter,
    PartitionShareError,
    QuotaHint,
)
from support.clock import FakeTime, settle


@pytest.fixture
def clock() -> FakeTime:
    return FakeTime()


def limiter(clock: FakeTime, rate: float, burst: int, **kwargs: float) -> GroupRateLimiter:
    # The arithmetic below is written for halving; the production default is gentler (0.7).
    kwargs.setdefault("decrease_factor", 0.5)
    return GroupRateLimiter(rate, burst, clock=clock, sleep=clock.sleep, **kwargs)


# --- share ---------------------------------------------------------------------------------------


def test_each_instance_gets_its_partitions_share_of_rate_and_burst(clock: FakeTime) -> None:
    instances = [limiter(clock, 120.0, 40) for _ in range(3)]
    for instance, assigned in zip(instances, (3, 4, 5), strict=True):
        instance.set_share(assigned, 12)

    assert [i.configured_rate_per_s for i in instances] == pytest.approx([30.0, 40.0, 50.0])
    assert [i.burst for i in instances] == pytest.approx([10.0, 40 / 3, 50 / 3])
    assert sum(i.configured_rate_per_s for i in instances) == pytest.approx(120.0)
    assert instances[0].share == pytest.approx(0.25)
    assert instances[0].current_rate_per_s == pytest.approx(30.0)


def test_a_tiny_share_still_holds_one_token(clock: FakeTime) -> None:
    rate_limiter = limiter(clock, 100.0, 10)
    rate_limiter.set_share(1, 100)
    assert rate_limiter.burst == 1.0
    assert rate_limiter.configured_rate_per_s == pytest.approx(1.0)


@pytest.mark.parametrize(("assigned", "total"), [(13, 12), (-1, 12), (1, 0), (0, -1)])
def test_impossible_share_is_refused(clock: FakeTime, assigned: int, total: int) -> None:
    rate_limiter = limiter(clock, 100.0, 10)
    with pytest.raises(PartitionShareError) as caught:
        rate_limiter.set_share(assigned, total)
    assert isinstance(caught.value, ConsumerError)


@pytest.mark.parametrize(
    ("burst", "increase", "decrease", "floor"),
    [
        (0, 0.1, 0.5, 0.05),
        (10, 0.0, 0.5, 0.05),
        (10, 0.1, 1.0, 0.05),
        (10, 0.1, 0.0, 0.05),
        (10, 0.1, 0.5, 0.0),
    ],
)
def test_settings_that_cannot_work_are_refused(
    burst: int, increase: float, decrease: float, floor: float
) -> None:
    with pytest.raises(ConfigurationError):
        GroupRateLimiter(
            100.0,
            burst,
            increase_fraction_per_s=increase,
            decrease_factor=decrease,
            floor_fraction=floor,
        )


# --- token accounting ----------------------------------------------------------------------------


async def test_burst_is_free_then_calls_come_at_the_share_rate(clock: FakeTime) -> None:
    rate_limiter = limiter(clock, 100.0, 20)
    rate_limiter.set_share(6, 12)  # 50/s, burst 10
    start = clock.now

    burst_waits = [await clock.run(rate_limiter.acquire()) for _ in range(10)]
    assert burst_waits == [0.0] * 10
    assert clock.now == start

    grant_times = []
    for _ in range(50):
        await clock.run(rate_limiter.acquire())
        grant_times.append(clock.now - start)
    assert grant_times == pytest.approx([0.02 * k for k in range(1, 51)])


async def test_acquire_reports_the_seconds_it_waited(clock: FakeTime) -> None:
    rate_limiter = limiter(clock, 4.0, 1)
    rate_limiter.set_share(1, 1)
    assert await clock.run(rate_limiter.acquire()) == 0.0
    assert await clock.run(rate_limiter.acquire()) == pytest.approx(0.25)


async def test_an_idle_bucket_refills_only_up_to_its_burst(clock: FakeTime) -> None:
    rate_limiter = limiter(clock, 10.0, 5)
    rate_limiter.set_share(1, 1)
    for _ in range(5):
        await clock.run(rate_limiter.acquire())
    await clock.advance(60.0)
    start = clock.now

    for _ in range(5):
        await clock.run(rate_limiter.acquire())
    assert clock.now == start
    await clock.run(rate_limiter.acquire())
    assert clock.now - start == pytest.approx(0.1)


async def test_waiters_are_served_in_arrival_order(clock: FakeTime) -> None:
    rate_limiter = limiter(clock, 10.0, 1)
    rate_limiter.set_share(1, 1)
    await clock.run(rate_limiter.acquire())
    served: list[int] = []

    async def waiter(number: int) -> None:
        await rate_limiter.acquire()
        served.append(number)

    tasks = []
    for number in range(20):
        tasks.append(asyncio.create_task(waiter(number)))
        await settle()
    await clock.run(asyncio.gather(*tasks))

    assert served == list(range(20))


# --- 429 and AIMD --------------------------------------------------------------------------------


async def test_no_call_starts_before_the_retry_after_instant(clock: FakeTime) -> None:
    rate_limiter = limiter(clock, 100.0, 50)
    rate_limiter.set_share(1, 1)  # a full bucket: 50 tokens ready
    throttled_at = clock.now
    rate_limiter.on_throttled(2.0)
    assert rate_limiter.paused_until == throttled_at + 2.0

    waiters = [asyncio.create_task(rate_limiter.acquire()) for _ in range(3)]
    await clock.advance(1.999)
    assert not any(task.done() for task in waiters)

    await clock.advance(0.001)
    assert waiters[0].done()
    assert waiters[0].result() == pytest.approx(2.0)
    assert not waiters[1].done()
    assert rate_limiter.paused_until is None

    # The rest follow at the lowered rate (50/s), not as a burst of the saved-up tokens.
    await clock.advance(0.0199)
    assert not waiters[1].done()
    await clock.advance(0.0001)
    assert waiters[1].done()
    await clock.run(asyncio.gather(*waiters))
    assert clock.now - throttled_at == pytest.approx(2.04)


async def test_a_429_without_retry_after_pauses_for_the_default(clock: FakeTime) -> None:
    rate_limiter = limiter(clock, 100.0, 50)
    rate_limiter.set_share(1, 1)
    rate_limiter.on_throttled(None)
    assert await clock.run(rate_limiter.acquire()) == pytest.approx(DEFAULT_THROTTLE_PAUSE_S)


async def test_an_absurd_retry_after_is_capped(clock: FakeTime) -> None:
    rate_limiter = limiter(clock, 100.0, 50)
    rate_limiter.set_share(1, 1)
    rate_limiter.on_throttled(86_400.0)
    assert rate_limiter.paused_until == clock.now + MAX_THROTTLE_PAUSE_S


def test_429s_cut_the_rate_once_per_pause_and_not_below_the_floor(clock: FakeTime) -> None:
    rate_limiter = limiter(clock, 100.0, 10)
    rate_limiter.set_share(1, 2)  # 50/s
    rate_limiter.on_throttled(1.0)
    assert rate_limiter.current_rate_per_s == pytest.approx(25.0)

    # 429s for calls that were already in flight: the same overshoot, not a new one.
    rate_limiter.on_throttled(1.0)
    rate_limiter.on_throttled(0.5)
    assert rate_limiter.current_rate_per_s == pytest.approx(25.0)

    for _ in range(20):
        clock.now += 1.0
        rate_limiter.on_throttled(0.5)
    assert rate_limiter.current_rate_per_s == pytest.approx(2.5)  # 5 % of 50
    assert rate_limiter.configured_rate_per_s == pytest.approx(50.0)


def test_a_clump_of_429s_after_a_millisecond_pause_is_one_cut(clock: FakeTime) -> None:
    rate_limiter = limiter(clock, 100.0, 10)
    rate_limiter.set_share(1, 2)  # 50/s
    rate_limiter.on_throttled(0.005)
    clock.now += 0.01  # the pause is over, but these 429s belong to the same clump
    rate_limiter.on_throttled(0.005)
    clock.now += 0.5
    rate_limiter.on_throttled(0.005)
    assert rate_limiter.current_rate_per_s == pytest.approx(25.0)
    clock.now += 1.0  # a second later a 429 is new evidence
    rate_limiter.on_throttled(0.005)
    assert rate_limiter.current_rate_per_s == pytest.approx(12.5)


def test_the_default_cut_is_cubics_not_renos(clock: FakeTime) -> None:
    rate_limiter = GroupRateLimiter(100.0, 10, clock=clock, sleep=clock.sleep)
    rate_limiter.set_share(1, 1)
    rate_limiter.on_throttled(0.01)
    assert rate_limiter.current_rate_per_s == pytest.approx(70.0)


def test_successes_raise_the_rate_gradually_up_to_the_share_only(clock: FakeTime) -> None:
    rate_limiter = limiter(clock, 100.0, 10, increase_fraction_per_s=0.1)
    rate_limiter.set_share(1, 2)  # 50/s
    rate_limiter.on_throttled(1.0)  # 25/s

    rate_limiter.on_success()  # answered during the pause: no credit
    assert rate_limiter.current_rate_per_s == pytest.approx(25.0)

    clock.now += 1.0
    rates = []
    for _ in range(80):  # 8 s of successes every 100 ms
        clock.now += 0.1
        rate_limiter.on_success()
        rates.append(rate_limiter.current_rate_per_s)
    assert rates[19] == pytest.approx(35.0)  # after 2 s: +10 % of 50 per second
    assert rates[39] == pytest.approx(45.0)
    assert rates == sorted(rates)
    assert max(rates) == pytest.approx(50.0)
    assert rates[-1] == pytest.approx(50.0)


def test_recovery_in_uneven_steps_stops_exactly_at_the_share(clock: FakeTime) -> None:
    rate_limiter = limiter(clock, 100.0, 10, increase_fraction_per_s=0.1)
    rate_limiter.set_share(1, 2)  # 50/s
    rate_limiter.on_throttled(0.0)  # 25/s; +1.5/s per 0.3 s step overshoots 50 unless capped
    for _ in range(40):
        clock.now += 0.3
        rate_limiter.on_success()
        assert rate_limiter.current_rate_per_s <= 50.0
    assert rate_limiter.current_rate_per_s == 50.0


def test_an_idle_gap_does_not_count_as_seconds_of_success(clock: FakeTime) -> None:
    rate_limiter = limiter(clock, 100.0, 10, increase_fraction_per_s=0.1)
    rate_limiter.set_share(1, 1)
    rate_limiter.on_throttled(0.0)  # 50/s
    clock.now += 1.0
    rate_limiter.on_success()
    clock.now += 600.0
    rate_limiter.on_success()
    assert rate_limiter.current_rate_per_s == pytest.approx(70.0)


async def test_recovered_rate_is_what_acquire_enforces(clock: FakeTime) -> None:
    rate_limiter = limiter(clock, 10.0, 1)
    rate_limiter.set_share(1, 1)
    rate_limiter.on_throttled(0.0)  # 5/s
    await clock.run(rate_limiter.acquire())
    assert await clock.run(rate_limiter.acquire()) == pytest.approx(0.2)


# --- rebalance mid-flight ------------------------------------------------------------------------


async def test_without_partitions_acquire_blocks_until_a_share_arrives(clock: FakeTime) -> None:
    rate_limiter = limiter(clock, 100.0, 10)
    waiter = asyncio.create_task(rate_limiter.acquire())
    await clock.advance(3_600.0)
    assert not waiter.done()

    rate_limiter.set_share(3, 12)
    await settle()
    assert waiter.done()
    assert waiter.result() == pytest.approx(3_600.0)


async def test_losing_every_partition_holds_the_next_caller(clock: FakeTime) -> None:
    rate_limiter = limiter(clock, 100.0, 1)
    rate_limiter.set_share(12, 12)
    await clock.run(rate_limiter.acquire())
    waiter = asyncio.create_task(rate_limiter.acquire())
    await settle()

    rate_limiter.set_share(0, 12)
    await clock.advance(10.0)
    assert not waiter.done()
    rate_limiter.set_share(1, 12)
    await settle()
    assert waiter.done()


async def test_a_larger_share_wakes_a_waiter_early(clock: FakeTime) -> None:
    rate_limiter = limiter(clock, 10.0, 1)
    rate_limiter.set_share(1, 10)  # 1/s
    await clock.run(rate_limiter.acquire())
    waiter = asyncio.create_task(rate_limiter.acquire())
    await clock.advance(0.1)  # 0.1 token earned at 1/s

    rate_limiter.set_share(10, 10)  # 10/s: the remaining 0.9 token takes 0.09 s
    await clock.advance(0.085)
    assert not waiter.done()
    await clock.advance(0.01)
    assert waiter.done()
    assert waiter.result() == pytest.approx(0.19)


async def test_a_smaller_share_clamps_saved_tokens_to_the_new_burst(clock: FakeTime) -> None:
    rate_limiter = limiter(clock, 120.0, 24)
    rate_limiter.set_share(12, 12)  # 24 tokens
    rate_limiter.set_share(3, 12)  # burst 6, 30/s
    start = clock.now
    for _ in range(6):
        await clock.run(rate_limiter.acquire())
    assert clock.now == start
    await clock.run(rate_limiter.acquire())
    assert clock.now - start == pytest.approx(1 / 30)


async def test_throttled_state_survives_a_rebalance_proportionally(clock: FakeTime) -> None:
    rate_limiter = limiter(clock, 120.0, 24)
    rate_limiter.set_share(6, 12)
    rate_limiter.on_throttled(0.0)
    rate_limiter.set_share(3, 12)
    assert rate_limiter.current_rate_per_s == pytest.approx(15.0)


# --- unlimited -----------------------------------------------------------------------------------


async def test_a_rate_of_zero_means_unlimited(clock: FakeTime) -> None:
    rate_limiter = limiter(clock, 0.0, 0)
    waits = [await clock.run(rate_limiter.acquire()) for _ in range(1_000)]
    assert waits == [0.0] * 1_000
    assert rate_limiter.configured_rate_per_s == math.inf
    assert rate_limiter.current_rate_per_s == math.inf
    rate_limiter.on_throttled(1.0)
    assert rate_limiter.current_rate_per_s == math.inf


async def test_unlimited_still_honours_retry_after(clock: FakeTime) -> None:
    rate_limiter = limiter(clock, 0.0, 0)
    rate_limiter.on_throttled(1.5)
    assert await clock.run(rate_limiter.acquire()) == pytest.approx(1.5)
    assert await clock.run(rate_limiter.acquire()) == 0.0


# --- cancellation --------------------------------------------------------------------------------


async def test_a_cancelled_waiter_takes_no_token(clock: FakeTime) -> None:
    rate_limiter = limiter(clock, 1.0, 1)
    rate_limiter.set_share(1, 1)
    await clock.run(rate_limiter.acquire())
    start = clock.now
    first = asyncio.create_task(rate_limiter.acquire())
    await settle()
    second = asyncio.create_task(rate_limiter.acquire())
    third = asyncio.create_task(rate_limiter.acquire())
    await clock.advance(0.5)

    first.cancel()  # while it holds the head of the queue and sleeps
    second.cancel()  # while it is queued behind it
    await settle()
    assert first.cancelled()
    assert second.cancelled()

    await clock.advance(0.5)
    assert third.done()
    assert clock.now - start == pytest.approx(1.0)
    # Nothing else was taken: the next token is exactly one interval later.
    assert await clock.run(rate_limiter.acquire()) == pytest.approx(1.0)


async def test_cancelling_during_a_retry_after_pause_leaves_the_pause(clock: FakeTime) -> None:
    rate_limiter = limiter(clock, 10.0, 5)
    rate_limiter.set_share(1, 1)
    throttled_at = clock.now
    rate_limiter.on_throttled(1.0)
    waiter = asyncio.create_task(rate_limiter.acquire())
    await clock.advance(0.5)
    waiter.cancel()
    await settle()

    assert await clock.run(rate_limiter.acquire()) == pytest.approx(0.5)
    assert clock.now == pytest.approx(throttled_at + 1.0)


# --- the real clock ------------------------------------------------------------------------------


async def test_with_the_real_clock_calls_are_spaced_by_the_rate() -> None:
    rate_limiter = GroupRateLimiter(1_000.0, 1)
    rate_limiter.set_share(1, 1)
    started = time.monotonic()
    waits = [await asyncio.wait_for(rate_limiter.acquire(), timeout=5) for _ in range(21)]
    elapsed = time.monotonic() - started
    # The first is the burst; twenty more at 1 ms each cannot come sooner than 20 ms.
    assert waits[0] < 0.001
    assert elapsed >= 0.020
    assert 0.0 < sum(waits) <= elapsed


# --- the CRM's own rate-limit headers (observe_quota) -------------------------------------------


def test_a_crm_policy_below_the_configured_rate_caps_each_instances_share(clock: FakeTime) -> None:
    instances = [limiter(clock, 1000.0, 40) for _ in range(2)]
    instances[0].set_share(3, 12)
    instances[1].set_share(9, 12)
    for instance in instances:
        instance.observe_quota(QuotaHint(remaining=None, reset_s=0.0, rate_per_s=40.0))
    # The CRM grants the token 40/s in all; the instances split it like the configured rate.
    assert [i.current_rate_per_s for i in instances] == pytest.approx([10.0, 30.0])
    instances[0].observe_quota(QuotaHint(remaining=None, reset_s=0.0, rate_per_s=10_000.0))
    assert instances[0].current_rate_per_s == pytest.approx(250.0)  # its configured share


async def test_a_policy_paces_an_otherwise_unlimited_instance(clock: FakeTime) -> None:
    rate_limiter = limiter(clock, 0.0, 4)
    rate_limiter.set_share(1, 1)
    assert math.isinf(rate_limiter.current_rate_per_s)
    rate_limiter.observe_quota(QuotaHint(remaining=None, reset_s=0.0, rate_per_s=2.0))
    assert rate_limiter.current_rate_per_s == pytest.approx(2.0)
    started = clock.now
    for _ in range(4 + 6):  # the burst of 4, then 6 at 2/s
        await clock.run(rate_limiter.acquire())
    assert clock.now - started == pytest.approx(3.0)


async def test_no_more_calls_than_the_share_of_what_remains_until_the_reset(
    clock: FakeTime,
) -> None:
    rate_limiter = limiter(clock, 1000.0, 100)
    rate_limiter.set_share(6, 12)
    # 10 left for the whole client within 4 s; 2 of this instance's calls are still unanswered.
    rate_limiter.observe_quota(QuotaHint(remaining=10, reset_s=4.0, rate_per_s=None, in_flight=2))
    started = clock.now
    for _ in range(3):  # half of 10, less the 2 on the wire
        assert await clock.run(rate_limiter.acquire()) == 0.0
    waited = await clock.run(rate_limiter.acquire())
    assert waited == pytest.approx(4.0)
    assert clock.now - started == pytest.approx(4.0)


async def test_a_fresher_answer_replaces_the_budget_and_wakes_the_waiter(clock: FakeTime) -> None:
    rate_limiter = limiter(clock, 1000.0, 100)
    rate_limiter.set_share(1, 1)
    rate_limiter.observe_quota(QuotaHint(remaining=0, reset_s=30.0, rate_per_s=None))
    waiter = asyncio.ensure_future(rate_limiter.acquire())
    await clock.advance(1.0)
    assert not waiter.done()
    rate_limiter.observe_quota(QuotaHint(remaining=5, reset_s=30.0, rate_per_s=None))
    await settle()
    assert waiter.done()
    assert waiter.result() == pytest.approx(1.0)


async def test_a_rebalance_keeps_nothing_left_until_the_reset(clock: FakeTime) -> None:
    """Seen against the simulator: a second assignment callback ~0.4 s after the first answers
    dropped the budget, and the configured burst met the CRM's empty bucket (18 429s)."""
    for assigned in (1, 2):  # the same share again, and a larger one
        rate_limiter = limiter(clock, 1000.0, 100)
        rate_limiter.set_share(1, 2)
        rate_limiter.observe_quota(QuotaHint(remaining=0, reset_s=60.0, rate_per_s=None))
        rate_limiter.set_share(assigned, 2)
        assert await clock.run(rate_limiter.acquire()) == pytest.approx(60.0)


async def test_a_budget_follows_the_share(clock: FakeTime) -> None:
    rate_limiter = limiter(clock, 1000.0, 100)
    rate_limiter.set_share(2, 4)
    rate_limiter.observe_quota(QuotaHint(remaining=12, reset_s=10.0, rate_per_s=None))
    rate_limiter.set_share(1, 4)  # half the partitions: half of the client's 12 is now 3
    for _ in range(3):
        assert await clock.run(rate_limiter.acquire()) == 0.0
    assert await clock.run(rate_limiter.acquire()) == pytest.approx(10.0)


async def test_losing_every_partition_drops_the_budget(clock: FakeTime) -> None:
    rate_limiter = limiter(clock, 1000.0, 100)
    rate_limiter.set_share(1, 2)
    rate_limiter.observe_quota(QuotaHint(remaining=0, reset_s=60.0, rate_per_s=None))
    rate_limiter.set_share(0, 2)
    rate_limiter.set_share(1, 2)  # a new owner's first call is a probe for a fresh budget
    assert await clock.run(rate_limiter.acquire()) == 0.0


async def test_a_huge_reset_is_capped_like_a_retry_after(clock: FakeTime) -> None:
    rate_limiter = limiter(clock, 1000.0, 100)
    rate_limiter.set_share(1, 1)
    rate_limiter.observe_quota(QuotaHint(remaining=0, reset_s=86_400.0, rate_per_s=None))
    assert await clock.run(rate_limiter.acquire()) == pytest.approx(MAX_THROTTLE_PAUSE_S)


async def test_a_call_that_took_its_token_before_a_429_waits_out_the_pause(
    clock: FakeTime,
) -> None:
    rate_limiter = limiter(clock, 1000.0, 100)
    rate_limiter.set_share(1, 1)
    await clock.run(rate_limiter.acquire())  # the token is taken ...
    rate_limiter.on_throttled(2.5)  # ... then another call's 429 arrives
    started = clock.now
    await clock.run(rate_limiter.wait_while_paused())
    assert clock.now - started == pytest.approx(2.5)
    await clock.run(rate_limiter.wait_while_paused())  # no pause: no wait
    assert clock.now - started == pytest.approx(2.5)
