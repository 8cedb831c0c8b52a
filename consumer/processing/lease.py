"""A write lease: an instance writes only while it has recently proven it is alive in the group.

A process frozen for longer than the session timeout (a long GC pause, a suspended VM, SIGSTOP)
has been replaced by the time it runs again, but its records waiting for a token or a retry
would fire at once, before the client has told it that its partitions are gone: a "zombie" could
then overwrite the newer writes of the partition's new owner. So every write first checks the
lease. It is renewed by each poll of the consumer; after a gap longer than ``validity_s`` writes
stay suspended until the group confirms this member (``confirm``: the engine commits its safe
positions synchronously, which the broker accepts only from a member of the current generation;
a replaced member gets ``UNKNOWN_MEMBER_ID`` or ``ILLEGAL_GENERATION`` and its loss is reported
next, which cancels those records). Without a ``confirm`` that can tell, the suspension lasts
``grace_s``: librdkafka's session check runs every second on its main thread, but on a loaded
machine reporting the loss can take longer than any grace, hence the confirmation.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Final

# How often a suspended writer looks at the lease again; small next to any CRM call.
_CHECK_INTERVAL_S: Final = 0.05


class WriteLease:
    def __init__(
        self,
        validity_s: float,
        grace_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._validity_s = validity_s
        self._grace_s = grace_s
        self._clock = clock
        self._sleep = sleep
        self._renewed_at = clock()
        self._suspended_until = 0.0
        self._unconfirmed = False
        self._revoked = False

    def revoke(self) -> None:
        """For good (any thread): the client failed fatally, e.g. fenced; nothing may be sent."""
        self._revoked = True

    def renew(self, confirm: Callable[[], bool | None] | None = None) -> None:
        """A poll returned (the consumer's thread). After a gap, writes wait for ``confirm``:
        True (the group still counts this member: writes resume), False (it does not, or not
        yet: asked again at the next poll), None (it cannot tell: the grace applies)."""
        now = self._clock()
        if now - self._renewed_at > self._validity_s:
            self._suspended_until = now + self._grace_s
            self._unconfirmed = True
        self._renewed_at = now
        if self._unconfirmed:
            confirmed = None if confirm is None else confirm()
            if confirmed is None:
                self._unconfirmed = False  # the grace decides
            elif confirmed:
                self._unconfirmed = False
                self._suspended_until = 0.0

    def valid(self) -> bool:
        now = self._clock()
        return (
            not self._revoked
            and now - self._renewed_at <= self._validity_s
            and not self._unconfirmed
            and now >= self._suspended_until
        )

    async def held(self) -> None:
        """Return when writing is safe; wait (cancellably) while it is not."""
        while not self.valid():
            await self._sleep(_CHECK_INTERVAL_S)
