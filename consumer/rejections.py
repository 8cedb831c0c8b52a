"""Whether a rejected write is about its payload or about a sink that rejects everything.

A CRM answers 400/410/413/415/422 when it will not take *this* payload: the record goes to
the dead-letter topic. But a misconfigured sink (``http://`` pointed at an HTTPS port, a proxy or
an API gateway answering its own 400, a wrong API version in the base URL) answers the same to
every request, and dead-lettering on the first answer would park every healthy event. One answer
cannot tell the two apart; the answers of *other customers* can:

* a write the sink took (2xx), sent after a rejected one, shows the sink works: the rejection was
  about the payload (verdict :attr:`Verdict.PAYLOAD`, dead-letter it);
* rejections from ``threshold`` different customers with no such success between them show the
  sink is unusable (verdict :attr:`Verdict.SINK`): the circuit breaker opens, and every record
  of the streak, the ones rejected before the breaker opened included, waits and is sent again
  once a probe gets through. Nothing of the streak is dead-lettered, so nothing is lost.

Until a verdict, a rejected record waits (holding only its own customer's key). In a flowing
stream the next success comes within one CRM round trip, so genuine poison is dead-lettered a few
milliseconds later than it would be at once. The streak ends only with a success: while it lasts,
every further rejection is the sink's, and a probe rejected while it lasts re-opens the breaker.
If ``threshold`` different customers' payloads really are all bad (a producer bug), they look
exactly like an unusable sink and are kept, not dead-lettered: set the threshold to 0 to
dead-letter every rejection at once instead.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass
from typing import Final

from consumer.errors import ConfigurationError

# Twenty different customers rejected in a row, with no success between, before the sink is
# judged unusable. With a share p of genuinely bad payloads that happens by chance with
# probability p^20 per window: one in a million even if half the traffic were bad (0.5^20), one
# in 10^40 at a realistic 1 %. The price of a larger number is small: a misconfigured sink takes
# 20 doomed requests (milliseconds at any real rate) before the breaker stops them, and those 20
# records wait rather than being lost.
DEFAULT_REJECTION_THRESHOLD: Final = 20


class Verdict(enum.Enum):
    PAYLOAD = "payload"
    """The sink took other customers' writes: this payload is bad; dead-letter it."""
    SINK = "sink"
    """Too many different customers were rejected: the sink is unusable; retry once it is back."""


@dataclass(eq=False)
class _Suspect:
    customer_id: str
    sent_at: float
    verdict: asyncio.Future[Verdict]


class RejectionStreak:
    """Event loop thread only. ``sent_at`` values are instants of one monotonic clock."""

    def __init__(self, threshold: int = DEFAULT_REJECTION_THRESHOLD) -> None:
        if threshold < 0:
            raise ConfigurationError(f"rejection threshold must be >= 0, got {threshold}")
        self._threshold = threshold
        self._customers: set[str] = set()
        self._suspects: list[_Suspect] = []

    @property
    def threshold(self) -> int:
        return self._threshold

    @property
    def unusable(self) -> bool:
        """True while the streak has reached the threshold (until the next success)."""
        return self._threshold > 0 and len(self._customers) >= self._threshold

    @property
    def customers(self) -> int:
        """Different customers rejected since the last success."""
        return len(self._customers)

    def rejected(self, customer_id: str, sent_at: float) -> asyncio.Future[Verdict]:
        """A write for ``customer_id`` sent at ``sent_at`` was rejected; await the verdict.

        The verdict is already set when the threshold is 0 (:attr:`Verdict.PAYLOAD`) or when
        this rejection reaches it or comes after it (:attr:`Verdict.SINK`, for every waiting
        suspect too); otherwise it is set by a later :meth:`succeeded` or rejection.
        """
        verdict: asyncio.Future[Verdict] = asyncio.get_running_loop().create_future()
        if self._threshold == 0:
            verdict.set_result(Verdict.PAYLOAD)
            return verdict
        self._customers.add(customer_id)
        self._suspects.append(_Suspect(customer_id, sent_at, verdict))
        if self.unusable:
            self._settle(self._suspects, Verdict.SINK)
            self._suspects = []
        return verdict

    def succeeded(self, sent_at: float) -> None:
        """The sink took a write sent at ``sent_at``: every rejection sent no later than that
        was about its payload, and the streak restarts with the rejections sent after it."""
        if not self._customers:
            return
        before = [s for s in self._suspects if s.sent_at <= sent_at]
        self._suspects = [s for s in self._suspects if s.sent_at > sent_at]
        self._settle(before, Verdict.PAYLOAD)
        self._customers = {s.customer_id for s in self._suspects}

    @staticmethod
    def _settle(suspects: list[_Suspect], verdict: Verdict) -> None:
        for suspect in suspects:
            if not suspect.verdict.done():  # a waiter cancelled on revoke or shutdown
                suspect.verdict.set_result(verdict)
