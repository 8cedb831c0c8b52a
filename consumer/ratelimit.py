"""A group-wide request rate for the sink, enforced by each instance for its share of partitions.

The CRM's limit is one number for the whole consumer group. No instance talks to the others, so
each one enforces ``rate x assigned / total partitions`` (and the same share of the burst): the
shares add up to the group limit whatever the assignment, and the engine recomputes them on every
rebalance through :meth:`GroupRateLimiter.set_share`.

On top of the configured share sits AIMD, as TCP does for congestion: a 429 (the CRM is the judge
of what it can take, and may be shared with other clients) cuts the rate and pauses every call
until the server's Retry-After; each second of successes then adds back a slice of the share,
never exceeding it.

A CRM that sends rate-limit headers says more, before any 429 (:meth:`observe_quota`, fed by the
sink with a :class:`QuotaHint` from every answer). Those numbers are the CRM's budget for the
*whole client*: every instance of the group presents the same token, so every instance reads
the same counters. Each instance therefore takes the same share of them as of the configured
rate (its partitions / all partitions), and the shares again add up to what the CRM allows:

* ``RateLimit-Policy`` (requests per window) caps the rate: ``share x q / w``, when that is below
  the configured share (an operator who set the group rate above the CRM's gets the CRM's);
* ``remaining`` requests within ``reset`` seconds (``RateLimit``, ``X-RateLimit-*``) is a budget:
  this instance may start at most ``share x remaining - in_flight`` more calls, where
  ``in_flight`` counts its own calls the CRM had not answered when it computed ``remaining``
  (they will spend quota too). The budget grows at the policy's rate share, if a policy was
  given (a token bucket refills continuously; the headers' whole seconds are too coarse to
  wait for); when ``reset`` is over it is restored to ``share x limit`` (``X-RateLimit-Limit``),
  or else to one call, a probe whose answer brings a fresh budget. Every answer with headers
  replaces the budget; an answer without them leaves it to run out.

An instance with little work leaves its share of the budget unused rather than lend it: no
instance knows what the others hold, and over-spending is what this is here to prevent.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from consumer.errors import ConfigurationError, ConsumerError

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

# Additive increase: 10 % of the configured share per second of successes. After one 429 (rate
# halved) the instance is back at its share in ~5 s, and from the floor in ~10 s: slow enough that
# a CRM which just said "too much" is not hit with the full rate again before it has drained, fast
# enough that a single 429 costs a fraction of a second's worth of throughput, not minutes.
DEFAULT_INCREASE_FRACTION_PER_S: Final = 0.1
# Multiplicative decrease: 0.7 is TCP CUBIC's beta. Our share is already computed to fit the
# CRM's limit, so a 429 usually means a momentary clump (arrival jitter, another client), not a
# rate far too high; halving (Reno) would give away a third of the throughput for seconds after
# every such blip, and 0.7 still converges from a real overshoot in a few steps.
DEFAULT_DECREASE_FACTOR: Final = 0.7
# One cut per throttle event: the 429s of calls that were already on the wire (or that arrive
# in the same clump just after a millisecond-long Retry-After) are the same signal. A second
# is many round trips to a CRM, and the window of most servers' rate counters.
DECREASE_HOLDOFF_S: Final = 1.0
# Never below 5 % of the share: an instance must keep sending to learn that the CRM recovered
# (recovery is driven by successes), and repeated 429s must not grind the rate to zero.
DEFAULT_FLOOR_FRACTION: Final = 0.05
# A 429 without Retry-After still means "over the limit now". One second is the granularity of
# HTTP's Retry-After and of most servers' rate windows, so the window has rolled over by then.
DEFAULT_THROTTLE_PAUSE_S: Final = 1.0
# A Retry-After beyond this is treated as this: a bogus or hours-long hint must not silently
# freeze the whole instance. Five minutes matches the retry budget of a record (RetryPolicy), so
# by then the engine has dead-lettered or the sink is treated as unusable anyway.
MAX_THROTTLE_PAUSE_S: Final = 300.0
# A successful call after a long idle gap proves the CRM answers, not that it took a second's
# worth of load; crediting more than this per success would leap the rate back after any pause.
_MAX_SUCCESS_CREDIT_S: Final = 1.0
# Float slack: a waiter that slept exactly the computed time must find its token even if
# ``elapsed * rate`` lands at 0.9999999999.
_EPSILON: Final = 1e-9


@dataclass(frozen=True)
class QuotaHint:
    """What one CRM answer said about the client's quota (see :mod:`consumer.sink.hints`)."""

    remaining: int | None
    """Requests the CRM still takes from the whole client within ``reset_s``; None: not said."""
    reset_s: float
    """Seconds, from when the answer arrived, for which ``remaining`` holds (0 to a day)."""
    rate_per_s: float | None
    """The sustained rate the CRM's policy grants the whole client, if it said."""
    in_flight: int = 0
    """This instance's requests still unanswered when the answer arrived (not counted in it)."""
    limit: int | None = None
    """The quota the CRM restores when ``reset_s`` is over (``X-RateLimit-Limit``), if it said."""


class PartitionShareError(ConsumerError, ValueError):
    """``set_share`` was given counts that describe no assignment (negative, or more than all)."""


class GroupRateLimiter:
    """Token bucket for this instance's share of a group-wide rate, with AIMD on 429s.

    Waiters are served first come, first served (one waiter at a time holds the queue's head), so
    no key starves under many concurrent callers; a waiter cancelled while queued or waiting takes
    no token. Until the first :meth:`set_share` this instance owns no partitions and
    :meth:`acquire` blocks. Not thread-safe: call every method from the event loop's thread (a
    rebalance callback on another thread must hand ``set_share`` over with
    ``loop.call_soon_threadsafe``).
    """

    def __init__(
        self,
        group_rate_per_s: float,
        group_burst: int,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        increase_fraction_per_s: float = DEFAULT_INCREASE_FRACTION_PER_S,
        decrease_factor: float = DEFAULT_DECREASE_FACTOR,
        floor_fraction: float = DEFAULT_FLOOR_FRACTION,
    ) -> None:
        if group_rate_per_s > 0 and group_burst < 1:
            raise ConfigurationError(f"group burst must be >= 1, got {group_burst}")
        if increase_fraction_per_s <= 0:
            raise ConfigurationError(
                f"increase fraction must be > 0, got {increase_fraction_per_s}"
            )
        if not 0 < decrease_factor < 1:
            raise ConfigurationError(f"decrease factor must be in (0, 1), got {decrease_factor}")
        if not 0 < floor_fraction <= 1:
            raise ConfigurationError(f"floor fraction must be in (0, 1], got {floor_fraction}")
        self._group_rate = max(0.0, float(group_rate_per_s))
        self._group_burst = group_burst
        self._clock = clock
        self._sleep = sleep
        self._increase_fraction = increase_fraction_per_s
        self._decrease_factor = decrease_factor
        self._floor_fraction = floor_fraction

        self._share = 0.0
        # AIMD state as a fraction of the configured share, so a rebalance that changes the share
        # keeps an instance that was just throttled proportionally slowed down.
        self._rate_fraction = 1.0
        self._tokens = 0.0
        self._refilled_at = clock()
        self._paused_until = -math.inf
        self._last_decrease_at = -math.inf
        self._last_success_at = -math.inf
        # One waiter at a time computes and sleeps; asyncio.Lock queues the rest in FIFO order
        # and hands over correctly when a queued waiter is cancelled.
        self._queue = asyncio.Lock()
        self._changed = asyncio.Event()
        # What the CRM's headers said (observe_quota): its rate for the whole group, and this
        # instance's budget of calls until a deadline.
        self._crm_rate: float | None = None
        self._quota_left: float | None = None
        self._quota_at = -math.inf
        self._quota_until = -math.inf
        self._quota_window = 1.0
        self._quota_refill = 0.0
        self._quota_restored = 1.0

    @property
    def unlimited(self) -> bool:
        return self._group_rate == 0.0

    @property
    def share(self) -> float:
        """This instance's fraction of the group's partitions (0.0 .. 1.0)."""
        return self._share

    @property
    def configured_rate_per_s(self) -> float:
        """The group rate times this instance's share; ``inf`` when unlimited."""
        if self.unlimited:
            return math.inf
        return self._group_rate * self._share

    @property
    def current_rate_per_s(self) -> float:
        """The rate enforced now: the configured share, or the CRM's advertised rate's share when
        lower, lowered by recent 429s; ``inf`` when neither limits."""
        rate = self.configured_rate_per_s
        if self._crm_rate is not None:
            rate = min(rate, self._crm_rate * self._share)
        if math.isinf(rate):
            return math.inf
        return rate * self._rate_fraction

    @property
    def burst(self) -> float:
        """Tokens the bucket holds at most: the burst's share, at least one while any is owned."""
        if self._share == 0.0:
            return 0.0
        return max(1.0, self._group_burst * self._share)

    @property
    def paused_until(self) -> float | None:
        """The clock instant before which no call may start after a 429, or None."""
        if self._clock() < self._paused_until:
            return self._paused_until
        return None

    def set_share(self, assigned_partitions: int, total_partitions: int) -> None:
        """Take ``assigned / total`` of the group's rate and burst (call on every rebalance)."""
        if total_partitions < 0 or not 0 <= assigned_partitions <= max(total_partitions, 0):
            raise PartitionShareError(
                f"cannot own {assigned_partitions} of {total_partitions} partitions"
            )
        share = assigned_partitions / total_partitions if total_partitions else 0.0
        self._refill(self._clock())
        previous = self._share
        self._share = share
        # The CRM's last word is about the whole client, and still holds: this instance's part of
        # it follows the share (a rebalance, even one that leaves the share as it was, must not
        # turn "nothing left until the reset" into "unpaced"). Without a share there is no part.
        if self._quota_left is not None and previous > 0.0 and share > 0.0:
            ratio = share / previous
            self._quota_left *= ratio
            self._quota_refill *= ratio
            self._quota_restored = max(1.0, self._quota_restored * ratio)
        else:
            self._quota_left = None
        if previous == 0.0 and share > 0.0:
            # A new owner starts with its share of the burst, as a fresh bucket would; the
            # partitions it took over were not being served while they moved.
            self._tokens = self.burst
        else:
            self._tokens = min(self._tokens, self.burst)
        self._changed.set()

    async def acquire(self) -> float:
        """Wait for a token (and for any Retry-After pause); the seconds spent waiting."""
        started = self._clock()
        async with self._queue:
            while True:
                now = self._clock()
                wait = self._wait_needed(now)
                if wait <= 0.0:
                    if not math.isinf(self.current_rate_per_s):
                        self._tokens = max(0.0, self._tokens - 1.0)
                    if self._quota_left is not None:
                        self._quota_left -= 1.0
                    return now - started
                self._changed.clear()
                await self._sleep_or_change(wait)

    async def wait_while_paused(self) -> None:
        """Return once no 429 pause is in force; takes no token.

        The sink's last look before a request goes out: a call that took its token before a 429
        arrived (and then waited for a connection) must not be sent during the pause the CRM
        asked for.
        """
        while (now := self._clock()) < self._paused_until:
            await self._sleep(self._paused_until - now)

    def on_throttled(self, retry_after_s: float | None) -> None:
        """A 429: pause every call until the server's hint and lower the rate."""
        now = self._clock()
        pause = DEFAULT_THROTTLE_PAUSE_S if retry_after_s is None else retry_after_s
        if not math.isfinite(pause):
            pause = MAX_THROTTLE_PAUSE_S
        pause = min(max(pause, 0.0), MAX_THROTTLE_PAUSE_S)
        same_event = now < self._paused_until or now < self._last_decrease_at + DECREASE_HOLDOFF_S
        self._refill(now)
        self._paused_until = max(self._paused_until, now + pause)
        if not same_event:
            self._last_decrease_at = now
            # Calls already in flight when the first 429 came were sent at the old rate; their
            # 429s are the same signal, and cutting again for each would collapse the rate to the
            # floor after one overshoot. Only a 429 after the pause counts as new evidence.
            self._rate_fraction = max(
                self._floor_fraction, self._rate_fraction * self._decrease_factor
            )
        # The server counted what we sent; tokens saved up before the 429 would be spent as a
        # burst at the very instant it asked us to resume. One call at that instant, then the
        # lowered rate.
        self._tokens = min(self._tokens, 1.0)
        self._refilled_at = max(self._refilled_at, self._paused_until)
        self._changed.set()

    def observe_quota(self, hint: QuotaHint) -> None:
        """What a CRM answer's rate-limit headers said; see the module docstring for the shares.

        Called for every answer that carried them, newest last: a newer budget replaces an
        older one (it already counts what was spent since).
        """
        now = self._clock()
        self._refill(now)
        was_unpaced = math.isinf(self.current_rate_per_s)
        rate = hint.rate_per_s
        if rate is not None and math.isfinite(rate) and rate >= 0.0:
            self._crm_rate = rate
            if was_unpaced and not math.isinf(self.current_rate_per_s):
                # Paced from now on: start with this instance's burst, as a fresh bucket would.
                self._tokens = self.burst
                self._refilled_at = now
        if hint.remaining is not None:
            window = min(max(hint.reset_s, 0.0), MAX_THROTTLE_PAUSE_S)
            self._quota_left = hint.remaining * self._share - hint.in_flight
            self._quota_at = now
            self._quota_until = now + window
            self._quota_window = max(window, 1.0)
            rate = self._crm_rate
            self._quota_refill = 0.0 if rate is None else rate * self._share
            limit = hint.limit
            self._quota_restored = 1.0 if limit is None else max(1.0, limit * self._share)
        self._changed.set()

    def _quota_now(self, now: float) -> float | None:
        """This instance's calls left under the CRM's last word (see the module docstring)."""
        left = self._quota_left
        if left is None:
            return None
        if now >= self._quota_until:
            left = max(left, self._quota_restored)
            self._quota_until = now + self._quota_window
            self._quota_at = now
        elapsed = max(now - self._quota_at, 0.0)
        if self._quota_refill > 0.0 and elapsed > 0.0:
            left = min(left + self._quota_refill * elapsed, max(left, self.burst))
        self._quota_at = now
        self._quota_left = left
        return left

    def on_success(self) -> None:
        """A call the sink accepted: add a slice of the share per second of successes."""
        now = self._clock()
        if now < self._paused_until:
            # Answered for calls sent before the 429: no evidence the lowered rate is too low.
            return
        since = max(self._last_success_at, self._paused_until)
        credit_s = min(max(now - since, 0.0), _MAX_SUCCESS_CREDIT_S)
        self._last_success_at = now
        if self._rate_fraction >= 1.0 or credit_s == 0.0:
            return
        self._refill(now)
        self._rate_fraction = min(1.0, self._rate_fraction + self._increase_fraction * credit_s)

    def _wait_needed(self, now: float) -> float:
        if now < self._paused_until:
            return self._paused_until - now
        quota_wait = 0.0
        left = self._quota_now(now)
        if left is not None and left < 1.0 - _EPSILON:
            quota_wait = self._quota_until - now
            if self._quota_refill > 0.0:
                quota_wait = min(quota_wait, (1.0 - left) / self._quota_refill)
        rate = self.current_rate_per_s
        if math.isinf(rate):
            return quota_wait
        if self._share == 0.0:
            return math.inf
        self._refill(now)
        if self._tokens >= 1.0 - _EPSILON:
            return quota_wait
        return max(quota_wait, (1.0 - self._tokens) / rate)

    def _refill(self, now: float) -> None:
        if math.isinf(self.current_rate_per_s) or now <= self._refilled_at:
            return
        earned = (now - self._refilled_at) * self.current_rate_per_s
        self._tokens = min(self.burst, self._tokens + earned)
        self._refilled_at = now

    async def _sleep_or_change(self, wait: float) -> None:
        """Sleep ``wait`` seconds, or less if the share or the pause changes meanwhile."""
        changed = asyncio.ensure_future(self._changed.wait())
        if math.isinf(wait):
            try:
                await changed
            finally:
                changed.cancel()
            return
        sleeper = asyncio.ensure_future(self._sleep(wait))
        try:
            done, _ = await asyncio.wait({changed, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            changed.cancel()
            sleeper.cancel()
        if sleeper in done:
            sleeper.result()
