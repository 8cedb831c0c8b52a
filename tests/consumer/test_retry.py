"""The retry policy: full-jitter backoff bounds and spread, the retry budget, Retry-After hints."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from consumer.errors import ConfigurationError, ConsumerError
from consumer.retry import AttemptNumberError, RetryPolicy

POLICY = RetryPolicy(
    initial_delay_s=0.2, max_delay_s=30.0, multiplier=2.0, max_attempts=10, max_elapsed_s=300.0
)


def samples(policy: RetryPolicy, attempt: int, count: int = 2_000, seed: int = 7) -> list[float]:
    rng = random.Random(seed)
    return [policy.delay(attempt, rng) for _ in range(count)]


def test_defaults_are_the_documented_ones() -> None:
    assert RetryPolicy() == POLICY


def test_the_window_doubles_from_the_initial_delay_up_to_the_cap() -> None:
    ceilings = [POLICY.ceiling(attempt) for attempt in range(1, 12)]
    assert ceilings == pytest.approx([0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 30.0, 30.0, 30.0])


def test_a_huge_attempt_number_stays_at_the_cap() -> None:
    assert POLICY.ceiling(100_000) == 30.0
    assert 0.0 <= POLICY.delay(100_000, random.Random(1)) <= 30.0


@pytest.mark.parametrize("attempt", range(1, 16))
def test_every_delay_lies_within_its_window(attempt: int) -> None:
    delays = samples(POLICY, attempt, count=500)
    assert min(delays) >= 0.0
    assert max(delays) <= POLICY.ceiling(attempt)


def test_delays_are_spread_over_the_whole_window() -> None:
    delays = samples(POLICY, 8)  # window 25.6 s
    assert min(delays) < 0.05 * 25.6
    assert max(delays) > 0.95 * 25.6
    assert statistics.fmean(delays) == pytest.approx(12.8, rel=0.05)
    # No value repeats: concurrent keys that failed together do not retry together.
    assert len(set(delays)) == len(delays)
    quartile_counts = [sum(1 for d in delays if q * 6.4 <= d < (q + 1) * 6.4) for q in range(4)]
    assert all(400 < count < 600 for count in quartile_counts)


def test_waits_grow_with_the_attempt_number_on_average() -> None:
    means = [statistics.fmean(samples(POLICY, attempt)) for attempt in range(1, 10)]
    assert means == sorted(means)
    assert means[-1] > 50 * means[0]


def test_the_same_seed_gives_the_same_delays() -> None:
    assert samples(POLICY, 5, count=20, seed=42) == samples(POLICY, 5, count=20, seed=42)
    assert samples(POLICY, 5, count=20, seed=42) != samples(POLICY, 5, count=20, seed=43)


def test_exhausted_after_max_attempts() -> None:
    assert not POLICY.exhausted(9, 10.0)
    assert POLICY.exhausted(10, 10.0)
    assert POLICY.exhausted(11, 0.0)


def test_exhausted_after_max_elapsed_time_whatever_the_attempts() -> None:
    assert not POLICY.exhausted(1, 299.9)
    assert POLICY.exhausted(1, 300.0)
    assert POLICY.exhausted(2, 1_000.0)


def test_a_record_failing_forever_is_given_up_within_the_budget() -> None:
    rng = random.Random(3)
    attempts, elapsed = 0, 0.0
    while True:
        attempts += 1  # the call, which fails
        if POLICY.exhausted(attempts, elapsed):
            break
        elapsed += POLICY.delay(attempts, rng)
    assert attempts == 10
    assert elapsed <= sum(POLICY.ceiling(n) for n in range(1, 10))


def test_a_retry_after_hint_longer_than_the_jitter_wins() -> None:
    rng = random.Random(5)
    assert POLICY.delay_with_hint(1, 5.0, rng) == 5.0
    # Beyond max_delay_s too: calling before the server's instant only earns another 429.
    assert POLICY.delay_with_hint(1, 120.0, rng) == 120.0


def test_a_short_hint_does_not_shorten_the_backoff() -> None:
    with_hint = [POLICY.delay_with_hint(9, 0.5, random.Random(seed)) for seed in range(200)]
    without = [POLICY.delay(9, random.Random(seed)) for seed in range(200)]
    assert with_hint == [max(0.5, d) for d in without]
    assert min(with_hint) >= 0.5
    assert max(with_hint) > 25.0


def test_a_hint_beyond_the_whole_budget_is_capped_at_the_budget() -> None:
    assert POLICY.delay_with_hint(1, 86_400.0, random.Random(1)) == 300.0


@pytest.mark.parametrize("hint", [None, -1.0, math.nan, math.inf])
def test_no_usable_hint_means_plain_jitter(hint: float | None) -> None:
    assert POLICY.delay_with_hint(4, hint, random.Random(9)) == POLICY.delay(4, random.Random(9))


def test_attempts_are_counted_from_one() -> None:
    with pytest.raises(AttemptNumberError) as caught:
        POLICY.delay(0, random.Random(1))
    assert isinstance(caught.value, ConsumerError)


@pytest.mark.parametrize(
    ("initial", "maximum", "multiplier", "attempts", "elapsed"),
    [
        (0.0, 30.0, 2.0, 10, 300.0),
        (1.0, 0.5, 2.0, 10, 300.0),
        (0.2, 30.0, 0.5, 10, 300.0),
        (0.2, 30.0, 2.0, 0, 300.0),
        (0.2, 30.0, 2.0, 10, 0.0),
    ],
)
def test_policies_that_cannot_work_are_refused(
    initial: float, maximum: float, multiplier: float, attempts: int, elapsed: float
) -> None:
    with pytest.raises(ConfigurationError):
        RetryPolicy(initial, maximum, multiplier, attempts, elapsed)
