"""How long to wait before retrying a write the sink was too unwell to take, and when to give up.

The policy is "full jitter" exponential backoff (AWS Architecture Blog, "Exponential Backoff And
Jitter", 2015): the n-th wait is uniform in ``[0, min(max, initial x multiplier^(n-1))]``. Every
customer key that hit the same CRM hiccup retries independently, and full jitter spreads those
retries over the whole window, so the CRM does not see a synchronised wave at each step. It
matches decorrelated jitter on total work and completion time in that study while depending
only on the attempt number, so a key's retry state is one integer, not its previous delay.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from consumer.errors import ConfigurationError, ConsumerError


class AttemptNumberError(ConsumerError, ValueError):
    """An attempt number below 1: attempts are counted from the first call, which is 1."""


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff for one record's retries; immutable and shared by every key."""

    # The first retry comes after at most 200 ms: most CRM failures are a dropped connection or
    # one slow pod, gone by the next call, and the customer's later events wait behind this one.
    initial_delay_s: float = 0.2
    # No single wait beyond 30 s: past that a key is idle long after a recovered CRM could take
    # it, and a CRM down for longer is the circuit breaker's business, not each key's.
    max_delay_s: float = 30.0
    # Doubling reaches the 30 s cap at the 9th attempt (0.2 x 2^8 = 51 s). The nine waits of a
    # 10-attempt budget then add up to 81 s at most, ~40 s on average with full jitter: enough
    # to ride out a CRM pod restart or failover without holding a key for minutes.
    multiplier: float = 2.0
    # Ten attempts: a record still failing after ~40 s of backoff (plus up to ten 5 s timeouts)
    # is more likely poison the CRM chokes on (a 500 for one payload) than a transient fault; it
    # goes to the dead-letter topic so the customer's later events can move on.
    max_attempts: int = 10
    # However few attempts were made, five minutes of failing is the end. Attempts alone bound
    # the wait to ~2 minutes; this binds when Retry-After hints are long: a record holding its
    # customer's key (and its partition's committed offset) for longer delays everything behind
    # it more than dead-lettering and replaying it would.
    max_elapsed_s: float = 300.0

    def __post_init__(self) -> None:
        if self.initial_delay_s <= 0:
            raise ConfigurationError(f"initial delay must be > 0, got {self.initial_delay_s}")
        if self.max_delay_s < self.initial_delay_s:
            raise ConfigurationError(
                f"max delay {self.max_delay_s} is below the initial delay {self.initial_delay_s}"
            )
        if self.multiplier < 1:
            raise ConfigurationError(f"multiplier must be >= 1, got {self.multiplier}")
        if self.max_attempts < 1:
            raise ConfigurationError(f"max attempts must be >= 1, got {self.max_attempts}")
        if self.max_elapsed_s <= 0:
            raise ConfigurationError(f"max elapsed must be > 0, got {self.max_elapsed_s}")

    def ceiling(self, attempt: int) -> float:
        """The upper bound of the wait after failed attempt number ``attempt`` (1-based)."""
        if attempt < 1:
            raise AttemptNumberError(f"attempts are counted from 1, got {attempt}")
        try:
            grown = self.initial_delay_s * self.multiplier ** (attempt - 1)
        except OverflowError:
            return self.max_delay_s
        return min(self.max_delay_s, grown)

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based): full jitter."""
        return rng.uniform(0.0, self.ceiling(attempt))

    def delay_with_hint(self, attempt: int, hint_s: float | None, rng: random.Random) -> float:
        """The jittered delay, but never sooner than the server's Retry-After ``hint_s``.

        A hint is honoured beyond ``max_delay_s`` (calling earlier only earns another 429), but
        not beyond ``max_elapsed_s``: a wait longer than the whole retry budget cannot end in a
        retry anyway. A negative, NaN or infinite hint is no hint.
        """
        jittered = self.delay(attempt, rng)
        if hint_s is None or not math.isfinite(hint_s) or hint_s < 0:
            return jittered
        return min(max(hint_s, jittered), self.max_elapsed_s)

    def exhausted(self, attempts: int, elapsed_s: float) -> bool:
        """True when no further attempt may be made after ``attempts`` failed ones.

        ``elapsed_s`` is measured from the record's first attempt; the engine may pass
        ``elapsed + next delay`` to give up now rather than after a wait that would end past the
        budget.
        """
        return attempts >= self.max_attempts or elapsed_s >= self.max_elapsed_s
