"""Ending a set of records' work on a revoke or shutdown: writes on the wire finish, the rest stop.

A record's task spends most of its life waiting (for a token, a retry delay, the circuit
breaker, a rejection's verdict) and a short part writing (the sink call, or the dead letter or
state change that finishes it). Cancelling a wait loses nothing: the offset is not committed and
the partition's next owner processes the record again. Cancelling a write half-way only makes
that re-processing a duplicate the sink's idempotency key absorbs, but a write let finish saves
the duplicate, so writes get a bounded grace. What must not happen is a record starting a *new*
write during the grace (the breaker closing, a retry timer firing): each task is cancelled the
moment it is no longer writing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

_log = logging.getLogger(__name__)

R = TypeVar("R")

# How often the writing set is looked at again while the grace runs. A write's end is not an
# event of its task (the task goes on to its next wait), so it is polled; 50 ms is short beside
# a drain measured in seconds and costs nothing outside a revoke or shutdown.
_LOOK_AGAIN_S = 0.05


async def finish_writes(
    tasks: Mapping[asyncio.Task[Any], R],
    is_writing: Callable[[R], bool],
    grace_s: float,
) -> None:
    """Cancel every task once it is not writing; wait at most ``grace_s`` seconds for those that
    are; then cancel all and wait for the cancellations to land.

    ``tasks`` maps each task to what ``is_writing`` is asked about (a record). Never raises.
    """
    deadline = time.monotonic() + grace_s
    writing = {t for t in tasks if not t.done()}
    while True:
        writing = {t for t in writing if not t.done() and is_writing(tasks[t])}
        for task in tasks.keys() - writing:
            task.cancel()
        remaining = deadline - time.monotonic()
        if not writing or remaining <= 0:
            break
        await asyncio.wait(writing, timeout=min(remaining, _LOOK_AGAIN_S))
    if writing:
        _log.warning("abandoning writes still running", extra={"records": len(writing)})
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)
