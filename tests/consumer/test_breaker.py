"""The circuit breaker, driven by a fake clock: transitions, the single probe, backoff, wake-ups."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from consumer.breaker import BreakerState, CircuitBreaker, Passage
from consumer.errors import ConfigurationError
from support.clock import FakeTime, settle

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


class Recorder:
    def __init__(self) -> None:
        self.states: list[BreakerState] = []

    def __call__(self, state: BreakerState) -> None:
        self.states.append(state)


@pytest.fixture
def clock() -> FakeTime:
    return FakeTime()


@pytest.fixture
def changes() -> Recorder:
    return Recorder()


@pytest.fixture
def breaker(clock: FakeTime, changes: Recorder) -> CircuitBreaker:
    return CircuitBreaker(
        failure_threshold=5,
        open_interval_s=1.0,
        max_open_interval_s=30.0,
        clock=clock,
        sleep=clock.sleep,
        on_state_change=changes,
    )


def open_it(breaker: CircuitBreaker) -> None:
    breaker.trip("401 from the CRM")
    assert breaker.state is OPEN


# --- transitions ---------------------------------------------------------------------------------


def test_consecutive_failures_open_it_at_the_threshold(
    breaker: CircuitBreaker, clock: FakeTime, changes: Recorder
) -> None:
    for _ in range(4):
        breaker.record_failure("timeout")
    assert breaker.state is CLOSED
    assert breaker.consecutive_failures == 4

    breaker.record_failure("timeout")
    assert breaker.state is OPEN
    assert changes.states == [OPEN]
    assert breaker.probe_at == clock.now + 1.0
    assert breaker.reason == "5 consecutive failures: timeout"


def test_a_success_between_failures_starts_the_count_again(breaker: CircuitBreaker) -> None:
    for _ in range(4):
        breaker.record_failure()
    breaker.record_success()
    for _ in range(4):
        breaker.record_failure()
    assert breaker.state is CLOSED
    assert breaker.consecutive_failures == 4


def test_trip_opens_at_once(breaker: CircuitBreaker, changes: Recorder) -> None:
    breaker.trip("403 from the CRM")
    assert breaker.state is OPEN
    assert breaker.reason == "403 from the CRM"
    assert changes.states == [OPEN]


def test_more_trips_while_open_do_not_push_the_probe_back(
    breaker: CircuitBreaker, clock: FakeTime, changes: Recorder
) -> None:
    open_it(breaker)
    probe_at = breaker.probe_at
    clock.now += 0.5
    breaker.trip("401 again")
    breaker.record_failure("timeout")
    assert breaker.probe_at == probe_at
    assert changes.states == [OPEN]


def test_no_probe_before_the_interval_then_exactly_one(
    breaker: CircuitBreaker, clock: FakeTime, changes: Recorder
) -> None:
    open_it(breaker)
    clock.now += 0.999
    assert not breaker.allow_probe()
    assert breaker.state is OPEN

    clock.now += 0.001
    assert breaker.allow_probe()
    assert breaker.state is HALF_OPEN
    assert not breaker.allow_probe()
    assert not breaker.allow_probe()
    assert changes.states == [OPEN, HALF_OPEN]


def test_a_closed_breaker_needs_no_probe(breaker: CircuitBreaker) -> None:
    assert not breaker.allow_probe()
    assert breaker.state is CLOSED


def test_probe_success_closes_and_resets_everything(
    breaker: CircuitBreaker, clock: FakeTime, changes: Recorder
) -> None:
    for _ in range(5):
        breaker.record_failure()
    clock.now += 1.0
    assert breaker.allow_probe()
    breaker.record_failure()  # the probe fails: 2 s
    clock.now += 2.0
    assert breaker.allow_probe()

    breaker.record_success()
    assert breaker.state is CLOSED
    assert changes.states == [OPEN, HALF_OPEN, OPEN, HALF_OPEN, CLOSED]
    assert breaker.consecutive_failures == 0
    assert breaker.open_interval_s == 1.0
    assert breaker.probe_at is None
    for _ in range(4):
        breaker.record_failure()
    assert breaker.state is CLOSED


def test_each_failed_probe_doubles_the_interval_up_to_the_cap(
    breaker: CircuitBreaker, clock: FakeTime
) -> None:
    open_it(breaker)
    intervals = [breaker.open_interval_s]
    for _ in range(7):
        clock.now = breaker.probe_at or 0.0
        assert breaker.allow_probe()
        breaker.record_failure("503")
        assert breaker.state is OPEN
        assert breaker.probe_at == clock.now + breaker.open_interval_s
        intervals.append(breaker.open_interval_s)
    assert intervals == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


def test_a_trip_during_the_probe_reopens_with_a_longer_interval(
    breaker: CircuitBreaker, clock: FakeTime
) -> None:
    open_it(breaker)
    clock.now += 1.0
    assert breaker.allow_probe()
    breaker.trip("401 on the probe")
    assert breaker.state is OPEN
    assert breaker.open_interval_s == 2.0


def test_results_of_calls_admitted_before_it_opened_change_nothing(
    breaker: CircuitBreaker, clock: FakeTime
) -> None:
    open_it(breaker)
    breaker.record_success()  # answered late, sent while closed
    assert breaker.state is OPEN
    clock.now += 1.0
    assert breaker.allow_probe()
    breaker.record_success(probe=False)
    breaker.record_failure("timeout", probe=False)
    assert breaker.state is HALF_OPEN
    breaker.record_success(probe=True)
    assert breaker.state is CLOSED


def test_a_failing_observer_does_not_break_the_state_machine(
    clock: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    def observer(state: BreakerState) -> None:
        raise RuntimeError(f"metrics exploded on {state}")

    breaker = CircuitBreaker(clock=clock, on_state_change=observer)
    with caplog.at_level(logging.ERROR, logger="consumer.breaker"):
        breaker.trip("401")
    assert breaker.state is OPEN
    assert "state-change callback failed" in caplog.text


@pytest.mark.parametrize(
    ("threshold", "interval", "maximum"), [(0, 1.0, 30.0), (5, 0.0, 30.0), (5, 10.0, 5.0)]
)
def test_settings_that_cannot_work_are_refused(
    threshold: int, interval: float, maximum: float
) -> None:
    with pytest.raises(ConfigurationError):
        CircuitBreaker(threshold, interval, maximum)


# --- waiting -------------------------------------------------------------------------------------


async def test_a_closed_breaker_lets_callers_through_at_once(breaker: CircuitBreaker) -> None:
    assert await breaker.wait_until_closed_or_probe() is Passage.CLOSED


class Workers:
    """Many concurrent callers: each waits for the breaker, notes what it was told, and then
    stays busy "calling the sink" until the test lets it finish (a probe task that ends without
    a result gives the probe away, which is not what these tests are about)."""

    def __init__(self, breaker: CircuitBreaker, count: int) -> None:
        self.breaker = breaker
        self.passages: dict[int, Passage] = {}
        self.calls_may_end = asyncio.Event()
        self.tasks = [asyncio.create_task(self._call(number)) for number in range(count)]

    async def _call(self, number: int) -> None:
        self.passages[number] = await self.breaker.wait_until_closed_or_probe()
        await self.calls_may_end.wait()

    def probes(self) -> list[int]:
        return [n for n, passage in self.passages.items() if passage is Passage.PROBE]

    def waiting(self) -> int:
        return len(self.tasks) - len(self.passages)


async def test_many_waiters_get_exactly_one_probe_and_all_go_when_it_succeeds(
    breaker: CircuitBreaker, clock: FakeTime
) -> None:
    open_it(breaker)
    workers = Workers(breaker, 100)
    await clock.advance(0.999)
    assert workers.passages == {}

    await clock.advance(0.001)
    assert len(workers.probes()) == 1
    assert workers.waiting() == 99
    assert breaker.state is HALF_OPEN

    await clock.advance(60.0)  # a slow probe: nobody else is let out meanwhile
    assert workers.waiting() == 99

    breaker.record_success(probe=True)
    await settle()
    assert workers.waiting() == 0
    assert list(workers.passages.values()).count(Passage.CLOSED) == 99


async def test_after_a_failed_probe_the_next_single_probe_comes_later(
    breaker: CircuitBreaker, clock: FakeTime
) -> None:
    open_it(breaker)
    workers = Workers(breaker, 20)
    await clock.advance(1.0)
    [first] = workers.probes()

    breaker.record_failure("503", probe=True)
    await clock.advance(1.999)
    assert workers.probes() == [first]
    await clock.advance(0.001)
    assert len(workers.probes()) == 2
    assert workers.waiting() == 18


async def test_probe_times_follow_the_doubling_interval(
    breaker: CircuitBreaker, clock: FakeTime
) -> None:
    opened_at = clock.now
    open_it(breaker)
    granted_at: list[float] = []

    async def probe_that_fails() -> None:
        assert await breaker.wait_until_closed_or_probe() is Passage.PROBE
        granted_at.append(clock.now - opened_at)
        breaker.record_failure("503")  # from the probe's own task: recognised as the probe

    for _ in range(7):
        task = asyncio.create_task(probe_that_fails())
        await clock.advance(breaker.open_interval_s)
        assert task.done()
        task.result()
    assert granted_at == [1.0, 3.0, 7.0, 15.0, 31.0, 61.0, 91.0]


async def test_a_probe_task_that_ends_without_a_result_passes_the_probe_on(
    breaker: CircuitBreaker, clock: FakeTime
) -> None:
    open_it(breaker)
    holder_may_finish = asyncio.Event()

    async def probe_cancelled_mid_call() -> None:
        assert await breaker.wait_until_closed_or_probe() is Passage.PROBE
        await holder_may_finish.wait()  # the sink call, cancelled on revoke

    holder = asyncio.create_task(probe_cancelled_mid_call())
    await clock.advance(1.0)
    assert breaker.state is HALF_OPEN
    workers = Workers(breaker, 5)
    await settle()
    assert workers.passages == {}

    holder.cancel()
    await settle()
    assert len(workers.probes()) == 1
    assert workers.waiting() == 4
    assert breaker.state is HALF_OPEN


async def test_a_probe_that_asks_again_without_a_result_is_still_the_probe(
    breaker: CircuitBreaker, clock: FakeTime
) -> None:
    open_it(breaker)
    passages: list[Passage] = []

    async def probe_throttled_once() -> None:
        passages.append(await breaker.wait_until_closed_or_probe())
        # A 429 is the limiter's business, not a result: the probe goes round again.
        passages.append(await breaker.wait_until_closed_or_probe())
        breaker.record_success()

    prober = asyncio.create_task(probe_throttled_once())
    await settle()
    workers = Workers(breaker, 10)
    await clock.advance(1.0)

    assert prober.done()
    prober.result()
    assert passages == [Passage.PROBE, Passage.PROBE]
    assert breaker.state is CLOSED
    assert set(workers.passages.values()) == {Passage.CLOSED}
    assert workers.waiting() == 0


async def test_a_late_result_from_another_task_does_not_decide_the_probe(
    breaker: CircuitBreaker, clock: FakeTime
) -> None:
    open_it(breaker)
    probe_result = asyncio.Event()

    async def probe() -> None:
        assert await breaker.wait_until_closed_or_probe() is Passage.PROBE
        await probe_result.wait()
        breaker.record_success()

    async def late_answer_from_before_the_outage() -> None:
        breaker.record_failure("timeout")

    prober = asyncio.create_task(probe())
    await clock.advance(1.0)
    await asyncio.create_task(late_answer_from_before_the_outage())
    assert breaker.state is HALF_OPEN
    assert breaker.open_interval_s == 1.0

    probe_result.set()
    await settle()
    assert prober.done()
    assert breaker.state is CLOSED


async def test_cancelled_waiters_leave_the_others_served(
    breaker: CircuitBreaker, clock: FakeTime
) -> None:
    open_it(breaker)
    workers = Workers(breaker, 10)
    await settle()
    for task in workers.tasks[:5]:
        task.cancel()
    await clock.advance(1.0)
    assert len(workers.probes()) == 1
    breaker.record_success(probe=True)
    await settle()
    assert sorted(workers.passages) == [5, 6, 7, 8, 9]
    assert all(task.cancelled() for task in workers.tasks[:5])


async def test_with_the_real_clock_the_probe_comes_after_the_interval() -> None:
    breaker = CircuitBreaker(open_interval_s=0.01, max_open_interval_s=0.02)
    breaker.trip("401")
    started = time.monotonic()
    passage = await asyncio.wait_for(breaker.wait_until_closed_or_probe(), timeout=5)
    assert passage is Passage.PROBE
    assert time.monotonic() - started >= 0.01
