"""A token bucket: the CRM's request-rate limit, answered as 429 + Retry-After when exceeded."""

from __future__ import annotations

import time
from collections.abc import Callable

# Floating-point slack when comparing token counts: a client that waited exactly the advertised
# time must get its token even if ``elapsed * rate`` lands at 0.9999999999.
_EPSILON = 1e-9


class TokenBucket:
    """``rate_per_s`` tokens per second, holding at most ``burst``; one token per request.

    A rate of 0 means unlimited. Starts full. Not thread-safe: the simulator uses it from its
    event loop only.
    """

    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._rate = 0.0
        self._burst = 1
        self._tokens = 0.0
        self._stamp = clock()
        self._apply(rate_per_s, burst)
        self._tokens = float(self._burst)

    @property
    def rate_per_s(self) -> float:
        return self._rate

    @property
    def burst(self) -> int:
        return self._burst

    @property
    def unlimited(self) -> bool:
        return self._rate == 0.0

    def try_acquire(self) -> float:
        """Take a token: 0.0 when allowed, else the seconds until a token will be available."""
        if self.unlimited:
            return 0.0
        self._refill()
        if self._tokens >= 1.0 - _EPSILON:
            self._tokens = max(0.0, self._tokens - 1.0)
            return 0.0
        return (1.0 - self._tokens) / self._rate

    def available(self) -> float:
        """The tokens in the bucket now (fractional); ``inf`` when unlimited."""
        if self.unlimited:
            return float("inf")
        self._refill()
        return self._tokens

    def reconfigure(self, rate_per_s: float, burst: int) -> None:
        """Change rate and burst, keeping the tokens already earned (capped at the new burst).

        Going from unlimited to limited starts with a full bucket, as a fresh bucket would.
        """
        was_unlimited = self.unlimited
        self._refill()
        self._apply(rate_per_s, burst)
        if was_unlimited:
            self._tokens = float(self._burst)
        else:
            self._tokens = min(self._tokens, float(self._burst))

    def refill_completely(self) -> None:
        """Fill the bucket to its burst (used by the simulator's reset)."""
        self._stamp = self._clock()
        self._tokens = float(self._burst)

    def _apply(self, rate_per_s: float, burst: int) -> None:
        if rate_per_s < 0.0:
            msg = f"rate_per_s must be >= 0, got {rate_per_s}"
            raise ValueError(msg)
        if burst < 1:
            msg = f"burst must be >= 1, got {burst}"
            raise ValueError(msg)
        self._rate = float(rate_per_s)
        self._burst = burst

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._stamp)
        self._stamp = now
        self._tokens = min(float(self._burst), self._tokens + elapsed * self._rate)
