"""A circuit breaker for "the sink is unusable": stop every call, let one find out when it is back.

States, as in Nygard's *Release It!* and resilience4j:

* ``closed`` - calls flow; consecutive transient failures are counted, any success resets them.
* ``open`` - no call may start. Entered after ``failure_threshold`` consecutive failures, or at
  once through :meth:`CircuitBreaker.trip` (401/403, DNS failure: no retry can help). After the
  open interval one caller is let through as the probe.
* ``half_open`` - the probe is in flight, everybody else still waits. Its success closes the
  breaker and wakes every waiter; its failure re-opens it with the interval doubled (up to a cap),
  so a long outage costs one probe per ``max_open_interval_s``, not a stream of doomed calls.

The engine reacts to :attr:`CircuitBreaker.on_state_change` (pause every partition when it opens,
resume when it closes, set metrics) and routes every sink call through
:meth:`CircuitBreaker.wait_until_closed_or_probe`.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final

from consumer.errors import ConfigurationError

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

# Five in a row: one or two failures are routine (a CRM pod restarting, a keep-alive connection
# dropped) and the per-key retries absorb them. Calls run concurrently for many keys, so during a
# real outage five failures accumulate within milliseconds, while a healthy CRM interleaves
# successes that reset the count; at a 10 % error rate five in a row happen about once per
# 100,000 calls.
DEFAULT_FAILURE_THRESHOLD: Final = 5
# The first probe after one second: most outages the breaker sees are blips (a deploy, a leader
# move), and everything waits while it is open, so the first look should come soon.
DEFAULT_OPEN_INTERVAL_S: Final = 1.0
# Doubling stops at 30 s: a CRM that is down for an hour gets one probe per 30 s per instance
# (negligible load while it struggles), and once it is back consumption resumes within 30 s.
DEFAULT_MAX_OPEN_INTERVAL_S: Final = 30.0

_log = logging.getLogger(__name__)


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Passage(enum.Enum):
    """Why :meth:`CircuitBreaker.wait_until_closed_or_probe` let the caller go."""

    CLOSED = "closed"
    """The breaker is closed: call the sink as usual."""
    PROBE = "probe"
    """The caller is the one probe: make one call and report its result from the same task."""


StateChangeCallback = Callable[[BreakerState], None]
"""Called with the new state after every transition; ``reason`` and ``probe_at`` are current."""


class CircuitBreaker:
    """One breaker per sink per instance; every method runs on the event loop's thread.

    Results of calls are reported with :meth:`record_success` / :meth:`record_failure` /
    :meth:`trip`. While half-open only the probe's result counts: a call admitted while the
    breaker was still closed may answer late, and its result says nothing about the sink *now*.
    The probe is recognised as the task that was granted it (report from that task, or pass
    ``probe=`` explicitly). A probe task that asks to pass again without having reported is
    still the probe (a 429 on the probe, for example); one that ends without reporting
    (cancelled on revoke or shutdown) gives the probe back to the next waiter.
    """

    def __init__(
        self,
        failure_threshold: int = DEFAULT_FAILURE_THRESHOLD,
        open_interval_s: float = DEFAULT_OPEN_INTERVAL_S,
        max_open_interval_s: float = DEFAULT_MAX_OPEN_INTERVAL_S,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        on_state_change: StateChangeCallback | None = None,
    ) -> None:
        if failure_threshold < 1:
            raise ConfigurationError(f"failure threshold must be >= 1, got {failure_threshold}")
        if open_interval_s <= 0:
            raise ConfigurationError(f"open interval must be > 0, got {open_interval_s}")
        if max_open_interval_s < open_interval_s:
            raise ConfigurationError(
                f"max open interval {max_open_interval_s} is below the initial {open_interval_s}"
            )
        self._failure_threshold = failure_threshold
        self._initial_interval = open_interval_s
        self._max_interval = max_open_interval_s
        self._clock = clock
        self._sleep = sleep
        self.on_state_change = on_state_change
        """Called synchronously after every transition; exceptions are logged, not raised."""

        self._state = BreakerState.CLOSED
        self._consecutive_failures = 0
        self._interval = open_interval_s
        self._probe_at = 0.0
        self._reason = ""
        self._openings = 0
        # Set and replaced on every change, so a waiter that took the current one is woken
        # exactly by the next change and never misses one between its check and its wait.
        self._changed = asyncio.Event()
        self._probe_task: asyncio.Task[object] | None = None
        # One timer for all waiters: it wakes them when the probe becomes due.
        self._timer: asyncio.Future[None] | None = None
        self._timer_deadline = 0.0

    @property
    def state(self) -> BreakerState:
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._consecutive_failures

    @property
    def open_interval_s(self) -> float:
        """The interval the breaker waits (or will wait next time) before letting a probe out."""
        return self._interval

    @property
    def probe_at(self) -> float | None:
        """When open: the clock instant from which a probe may start; else None."""
        return self._probe_at if self._state is BreakerState.OPEN else None

    @property
    def openings(self) -> int:
        """How often the breaker has opened (or re-opened); tells whether it did during a wait."""
        return self._openings

    @property
    def reason(self) -> str:
        """Why the breaker last changed state ("" while it never did)."""
        return self._reason

    def record_success(self, *, probe: bool | None = None) -> None:
        """The sink answered (a 2xx, or a 4xx about the payload: the sink itself works)."""
        if self._state is BreakerState.CLOSED:
            self._consecutive_failures = 0
        elif self._state is BreakerState.HALF_OPEN and self._is_probe(probe):
            self._consecutive_failures = 0
            self._interval = self._initial_interval
            self._transition(BreakerState.CLOSED, "probe succeeded")

    def record_failure(self, reason: str = "", *, probe: bool | None = None) -> None:
        """A transient failure (timeout, connection error, 5xx); never a 429, the limiter's."""
        if self._state is BreakerState.CLOSED:
            self._consecutive_failures += 1
            if self._consecutive_failures >= self._failure_threshold:
                detail = f": {reason}" if reason else ""
                self._open(
                    self._initial_interval,
                    f"{self._consecutive_failures} consecutive failures{detail}",
                )
        elif self._state is BreakerState.HALF_OPEN and self._is_probe(probe):
            self._reopen(f"probe failed: {reason}" if reason else "probe failed")

    def trip(self, reason: str) -> None:
        """Open now, whatever the count: the sink cannot take any call (401/403, DNS)."""
        if self._state is BreakerState.CLOSED:
            self._open(self._initial_interval, reason)
        elif self._state is BreakerState.HALF_OPEN:
            self._reopen(reason)
        # Already open: later reports of the same cause must not push the probe further out.

    def abandon_probe(self) -> None:
        """The probe ended without a result: let the next waiter probe at once."""
        if self._state is BreakerState.HALF_OPEN:
            self._probe_at = self._clock()
            self._transition(BreakerState.OPEN, "probe abandoned")

    def allow_probe(self) -> bool:
        """When open and the interval has passed: go half-open and make the caller the probe."""
        if self._state is BreakerState.HALF_OPEN and self._is_probe(None, strict=True):
            return True
        if self._state is not BreakerState.OPEN or self._clock() < self._probe_at:
            return False
        self._probe_task = _current_task()
        if self._probe_task is not None:
            self._probe_task.add_done_callback(self._probe_task_done)
        self._transition(BreakerState.HALF_OPEN, "probe due")
        return True

    async def wait_until_closed_or_probe(self) -> Passage:
        """Return once the breaker is closed, or once this caller is chosen as the single probe.

        Safe for any number of concurrent callers; a cancelled caller leaves nothing behind. The
        probe reports its result from the same task (or with ``probe=True`` from elsewhere);
        if its task ends without one, the next waiter becomes the probe.
        """
        while True:
            if self._state is BreakerState.CLOSED:
                return Passage.CLOSED
            if self.allow_probe():
                return Passage.PROBE
            changed = self._changed
            if self._state is BreakerState.OPEN:
                self._ensure_timer(self._probe_at)
            await changed.wait()

    def _is_probe(self, probe: bool | None, *, strict: bool = False) -> bool:
        if probe is not None:
            return probe
        current = _current_task()
        if self._probe_task is None or current is None:
            # Nothing to tell callers apart by (the probe was taken outside a task): trust it.
            return not strict
        return current is self._probe_task

    def _probe_task_done(self, task: asyncio.Task[object]) -> None:
        if task is self._probe_task:
            self.abandon_probe()

    def _open(self, interval: float, reason: str) -> None:
        self._openings += 1
        self._interval = interval
        self._probe_at = self._clock() + interval
        self._transition(BreakerState.OPEN, reason)

    def _reopen(self, reason: str) -> None:
        self._open(min(self._interval * 2, self._max_interval), reason)

    def _transition(self, new: BreakerState, reason: str) -> None:
        self._state = new
        self._reason = reason
        if new is not BreakerState.HALF_OPEN and self._probe_task is not None:
            self._probe_task.remove_done_callback(self._probe_task_done)
            self._probe_task = None
        self._wake_waiters()
        if self.on_state_change is None:
            return
        try:
            self.on_state_change(new)
        except Exception:
            # The state machine has already moved; a failing observer (metrics, logging) must not
            # leave the caller of record_failure with an exception about somebody else's bug.
            _log.exception("circuit breaker state-change callback failed")

    def _wake_waiters(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _ensure_timer(self, deadline: float) -> None:
        if self._timer is not None and not self._timer.done() and self._timer_deadline <= deadline:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_deadline = deadline
        self._timer = asyncio.ensure_future(self._wake_at(deadline))

    async def _wake_at(self, deadline: float) -> None:
        await self._sleep(max(0.0, deadline - self._clock()))
        self._wake_waiters()


def _current_task() -> asyncio.Task[object] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:  # no running loop: called from plain synchronous code
        return None
