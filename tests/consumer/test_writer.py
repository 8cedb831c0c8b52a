"""What the writer decides for each answer of the sink, on the fake clock with a scripted sink:
retry with backoff (only that customer waits), dead-letter when the budget is spent, open the
breaker, wait for the limiter, and which waits count towards the retry budget."""

from __future__ import annotations

import asyncio
import itertools

from consumer.breaker import BreakerState
from consumer.errors import SinkRejectedError, SinkUnavailableError
from consumer.processing.lease import WriteLease
from consumer.retry import RetryPolicy
from support.clock import FakeTime, settle
from support.scripted import (
    OK,
    Hang,
    rejected,
    server_error,
    unauthorized,
    write,
    writer_under_test,
)


async def test_a_5xx_is_retried_after_a_backoff_and_then_written() -> None:
    clock = FakeTime()
    w = writer_under_test(clock)
    w.sink.script("C-1", server_error(503), server_error(500), OK)

    assert await clock.run(write(w, "C-1", "e-1")) is True

    calls = w.sink.calls_of("C-1")
    assert [c.outcome for c in calls] == ["SinkUnavailableError", "SinkUnavailableError", "ok"]
    policy = RetryPolicy()
    for attempt, (failed, retried) in enumerate(itertools.pairwise(calls), start=1):
        assert failed.answered_at is not None
        assert 0 <= retried.at - failed.answered_at <= policy.ceiling(attempt)
    assert w.dead_letters.letters == []
    assert w.counter("segstream_consumer_sink_retries_total") == 2


async def test_a_timeout_backs_off_only_its_own_customer() -> None:
    clock = FakeTime()
    w = writer_under_test(clock)
    w.sink.script("C-slow", Hang(5.0), OK)

    async def both() -> tuple[bool, bool]:
        slow = asyncio.ensure_future(write(w, "C-slow", "slow-1"))
        await settle()
        fast = [await write(w, "C-fast", f"fast-{n}") for n in range(20)]
        return await slow, all(fast)

    assert await clock.run(both()) == (True, True)
    slow_calls = w.sink.calls_of("C-slow")
    assert [c.outcome for c in slow_calls] == ["SinkUnavailableError", "ok"]
    first_answer = slow_calls[0].answered_at
    assert first_answer is not None
    # Twenty writes of another customer went through, one after the other, while the slow one
    # hung and then backed off.
    assert all((c.answered_at or 0) < first_answer for c in w.sink.calls_of("C-fast"))
    assert w.breaker.state is BreakerState.CLOSED
    assert w.dead_letters.letters == []


async def test_when_the_attempts_run_out_the_record_is_dead_lettered_with_its_count() -> None:
    clock = FakeTime()
    w = writer_under_test(clock, retry=RetryPolicy(max_attempts=3), failure_threshold=100)
    w.sink.script("C-1", *[server_error(500)] * 10)

    assert await clock.run(write(w, "C-1", "e-1")) is False

    assert len(w.sink.calls_of("C-1")) == 3
    [(message, failure)] = w.dead_letters.letters
    assert message.key() == b"C-1"
    assert failure.stage == "sink"
    assert isinstance(failure.error, SinkUnavailableError)
    assert failure.attempts == 3
    assert w.counter("segstream_consumer_records_total", outcome="dead_lettered") == 1


async def test_the_time_budget_counts_backoff_while_the_crm_serves_others() -> None:
    clock = FakeTime()
    policy = RetryPolicy(max_attempts=100, max_elapsed_s=10.0)
    w = writer_under_test(clock, retry=policy, failure_threshold=100)
    # Each failure asks for 4 s: three waits (12 s) pass the 10 s budget.
    w.sink.script("C-1", *[server_error(503, retry_after=4.0)] * 10)
    started = clock.now

    assert await clock.run(write(w, "C-1", "e-1")) is False

    assert len(w.sink.calls_of("C-1")) == 4
    assert 10.0 <= clock.now - started <= 13.0
    [(_, failure)] = w.dead_letters.letters
    assert failure.attempts == 4


async def test_time_waiting_on_an_open_breaker_does_not_count_towards_the_budget() -> None:
    """Issue 8 §3: a healthy record used to be dead-lettered on its first failure after an
    outage longer than the budget, because the wait for the breaker was counted."""
    clock = FakeTime()
    w = writer_under_test(clock, retry=RetryPolicy(max_elapsed_s=60.0), breaker_open_s=600.0)
    w.breaker.trip("CRM down")  # the first probe after ten minutes, far past the 60 s budget
    w.sink.script("C-probe", OK)
    w.sink.script("C-1", server_error(503), OK)

    async def after_the_outage() -> tuple[bool, bool]:
        probe = asyncio.ensure_future(write(w, "C-probe", "probe-1"))
        await settle()  # C-probe waits first, so it is the probe once the breaker is due
        record = asyncio.ensure_future(write(w, "C-1", "e-1"))
        return await probe, await record

    assert await clock.run(after_the_outage()) == (True, True)
    assert [c.outcome for c in w.sink.calls_of("C-1")] == ["SinkUnavailableError", "ok"]
    assert w.dead_letters.letters == []


async def test_time_waiting_for_a_limiter_token_does_not_count_towards_the_budget() -> None:
    clock = FakeTime()
    w = writer_under_test(clock, retry=RetryPolicy(max_elapsed_s=60.0), rate_per_s=1.0)
    w.limiter.on_throttled(300.0)  # the CRM asked for five minutes of quiet
    w.sink.script("C-1", server_error(503), OK)

    assert await clock.run(write(w, "C-1", "e-1")) is True
    assert [c.outcome for c in w.sink.calls_of("C-1")] == ["SinkUnavailableError", "ok"]
    assert w.sink.calls_of("C-1")[0].at >= 1_000.0 + 300.0
    assert w.dead_letters.letters == []


async def test_failures_that_open_the_breaker_are_the_outages_and_never_dead_letter() -> None:
    clock = FakeTime()
    w = writer_under_test(clock, retry=RetryPolicy(max_attempts=2), failure_threshold=3)
    w.sink.default = server_error(503)  # down for everyone

    async def outage() -> list[bool]:
        writes = [asyncio.ensure_future(write(w, f"C-{n}", f"e-{n}")) for n in range(10)]
        await clock.advance(300.0)
        assert w.breaker.state is not BreakerState.CLOSED
        assert w.dead_letters.letters == []
        w.sink.default = OK  # back
        return list(await asyncio.gather(*writes))

    assert await clock.run(outage()) == [True] * 10
    assert w.dead_letters.letters == []
    assert w.breaker.state is BreakerState.CLOSED


async def test_a_429_pauses_every_call_until_retry_after_and_is_not_an_attempt() -> None:
    clock = FakeTime()
    w = writer_under_test(clock, retry=RetryPolicy(max_attempts=1), rate_per_s=100.0, burst=10)
    w.sink.script("C-1", server_error(429, retry_after=7.0), OK)

    async def throttled() -> tuple[bool, bool]:
        first = asyncio.ensure_future(write(w, "C-1", "e-1"))
        await clock.advance(1.0)
        other = asyncio.ensure_future(write(w, "C-2", "e-2"))
        return await first, await other

    assert await clock.run(throttled()) == (True, True)
    throttled_at = w.sink.calls_of("C-1")[0].answered_at
    assert throttled_at is not None
    for call in [w.sink.calls_of("C-1")[1], *w.sink.calls_of("C-2")]:
        assert call.at >= throttled_at + 7.0
    assert w.limiter.current_rate_per_s < 100.0
    assert w.counter("segstream_consumer_throttled_total") == 1
    assert w.dead_letters.letters == []


async def test_a_401_opens_the_breaker_at_once_and_nothing_is_dead_lettered() -> None:
    clock = FakeTime()
    w = writer_under_test(clock)
    w.sink.script("C-1", unauthorized(), unauthorized(), OK)

    async def refused() -> bool:
        task = asyncio.ensure_future(write(w, "C-1", "e-1"))
        await clock.advance(0.1)
        assert w.breaker.state is BreakerState.OPEN
        return await task

    assert await clock.run(refused()) is True
    assert len(w.sink.calls_of("C-1")) == 3
    assert w.breaker.state is BreakerState.CLOSED
    assert w.dead_letters.letters == []


async def test_a_rejection_among_successes_is_dead_lettered_as_the_payloads_fault() -> None:
    clock = FakeTime()
    w = writer_under_test(clock, rejection_threshold=3)
    w.sink.script("C-bad", rejected(422))

    async def mixed() -> list[bool]:
        bad = asyncio.ensure_future(write(w, "C-bad", "bad-1"))
        await settle()
        good = [await write(w, f"C-{n}", f"good-{n}") for n in range(5)]
        return [await bad, *good]

    assert await clock.run(mixed()) == [False, True, True, True, True, True]
    assert w.dead_lettered() == ["bad-1"]
    [(_, failure)] = w.dead_letters.letters
    assert isinstance(failure.error, SinkRejectedError)
    assert failure.stage == "sink"
    assert w.breaker.state is BreakerState.CLOSED


async def test_rejections_from_many_customers_in_a_row_open_the_breaker_and_lose_nothing() -> None:
    """Issue 8 §2: a sink that answers 400 to everything (``http://`` at an HTTPS port) must not
    dead-letter healthy events; the ones rejected before the breaker opened are kept too."""
    clock = FakeTime()
    w = writer_under_test(clock, rejection_threshold=5)
    w.sink.default = rejected(400)

    async def misconfigured() -> list[bool]:
        writes = [asyncio.ensure_future(write(w, f"C-{n}", f"e-{n}")) for n in range(12)]
        await clock.advance(120.0)  # two minutes of the sink rejecting every probe
        assert w.breaker.state is not BreakerState.CLOSED
        assert w.dead_letters.letters == []
        w.sink.default = OK  # someone fixed the URL
        return list(await asyncio.gather(*writes))

    assert await clock.run(misconfigured()) == [True] * 12
    assert w.dead_letters.letters == []
    assert w.breaker.state is BreakerState.CLOSED
    # While open, one probe at a time, with the interval doubling: not a storm of requests.
    rejected_calls = [c for c in w.sink.calls if c.outcome == "SinkRejectedError"]
    assert len(rejected_calls) <= 12 + 10


async def test_a_poison_probe_after_an_outage_lets_the_others_through_and_is_dead_lettered() -> (
    None
):
    clock = FakeTime()
    w = writer_under_test(clock, rejection_threshold=5)
    w.breaker.trip("CRM down")
    w.sink.script("C-poison", rejected(422), rejected(422))

    async def after_the_outage() -> list[bool]:
        poison = asyncio.ensure_future(write(w, "C-poison", "poison-1"))
        await settle()  # the first waiter: the probe
        others = [asyncio.ensure_future(write(w, f"C-{n}", f"e-{n}")) for n in range(3)]
        await clock.advance(5.0)
        return [await poison, *await asyncio.gather(*others)]

    assert await clock.run(after_the_outage()) == [False, True, True, True]
    assert w.dead_lettered() == ["poison-1"]


async def test_with_threshold_zero_every_rejection_is_dead_lettered_at_once() -> None:
    clock = FakeTime()
    w = writer_under_test(clock, rejection_threshold=0)
    w.sink.default = rejected(400)

    results = await clock.run(asyncio.gather(*(write(w, f"C-{n}", f"e-{n}") for n in range(30))))

    assert results == [False] * 30
    assert len(w.dead_letters.letters) == 30
    assert w.breaker.state is BreakerState.CLOSED


async def test_an_unexpected_exception_from_the_sink_dead_letters_only_that_record() -> None:
    """Issue 8 §1: aiohttp refusing a header value (a CR LF in an idempotency key) used to
    reach the engine and stop the consumer."""
    clock = FakeTime()
    w = writer_under_test(clock)
    w.sink.script("C-odd", ValueError("Newline or carriage return character detected"))

    assert await clock.run(write(w, "C-odd", "odd-1")) is False
    assert await clock.run(write(w, "C-2", "e-2")) is True

    [(_, failure)] = w.dead_letters.letters
    assert failure.stage == "sink"
    assert isinstance(failure.error, ValueError)
    assert w.breaker.state is BreakerState.CLOSED
    assert w.counter("segstream_consumer_sink_errors_total", kind="error", status="none") == 1


async def test_a_write_that_waited_for_a_slot_checks_the_lease_once_it_has_the_slot() -> None:
    """A process frozen while a record waited for a write slot must not send it on waking on a
    lease it checked before it froze (seen in the frozen-instance test: one replayed update)."""
    clock = FakeTime()
    w = writer_under_test(clock, max_concurrent_writes=1)
    lease = WriteLease(validity_s=6.0, grace_s=2.0, clock=clock, sleep=clock.sleep)
    w.writer.lease = lease
    w.sink.script("C-1", Hang(10.0))  # holds the only slot for 10 s; the lease expires meanwhile

    async def polls_again_at(seconds: float) -> None:
        await clock.sleep(seconds)
        lease.renew()  # the consumer polls again: suspended for the grace, then valid

    started = clock.now
    await clock.run(
        asyncio.gather(write(w, "C-1", "e-1"), write(w, "C-2", "e-2"), polls_again_at(12.0))
    )
    [second] = w.sink.calls_of("C-2")
    assert second.at - started >= 12.0 + 2.0
