"""Flow control: how many records are in flight, when to stop fetching, what to pause.

Two halves, one per thread:

* :class:`InFlight` (event loop): the count of records fetched and not finished, the soft bound
  at which the loop stops taking records, and the reasons to pause every partition (the hard
  limit, an unusable sink) or some (partitions held by a record that cannot be read yet);
* :class:`Pauses` (Kafka thread): applies those wishes to the client, resuming only what it
  paused itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Final, Protocol

from confluent_kafka import Consumer, TopicPartition

Partition = tuple[str, int]
PauseWish = tuple[bool, frozenset[Partition]]
"""(pause every partition, the partitions held by a record that cannot be read yet)."""

# Flow control is soft: at the in-flight bound the loop stops taking records from the client
# (whose own prefetch is bounded) and only comes back this often, taking one, to serve rebalance
# callbacks. It does not pause: librdkafka drops a paused partition's prefetched records and,
# once every partition of a broker is paused, picks a resumed one up only after ~0.5-0.7 s, so
# pausing as flow control starves the workers. Pausing is for the extremes below.
FULL_POLL_INTERVAL_S: Final = 1.0
# Hard limit, as a multiple of the bound: the overshoot of one record per interval adds up only
# when nothing finishes for a long time (a CRM that hangs without failing); then partitions are
# paused after all, until the backlog is back under the bound.
HARD_LIMIT_FACTOR: Final = 2

_log = logging.getLogger(__name__)


class InFlightObserver(Protocol):
    def in_flight(self, count: int) -> None: ...


class InFlight:
    """Records fetched and not finished, all partitions together. Event loop thread only."""

    def __init__(self, max_in_flight: int, observer: InFlightObserver) -> None:
        self._bound = max_in_flight
        self._observer = observer
        self._count = 0
        self._hard_limited = False
        self._sink_unusable = False
        self._has_room = asyncio.Event()

    @property
    def count(self) -> int:
        return self._count

    async def room(self) -> int:
        """How many records the next fetch may take: at the bound, wait (up to the full-poll
        interval) for one to finish, then take at least one to keep serving rebalances."""
        room = self._bound - self._count
        if room > 0:
            return room
        self._has_room.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._has_room.wait(), FULL_POLL_INTERVAL_S)
        return max(1, self._bound - self._count)

    def fetched(self) -> None:
        self._count += 1

    def finished(self) -> None:
        self._count -= 1
        if self._count < self._bound:
            self._has_room.set()

    def dropped(self, records: int) -> None:
        """Records given up unfinished (a revoked or lost partition's)."""
        self._count -= records
        if self._count < self._bound:
            self._has_room.set()

    def sink_unusable(self, unusable: bool) -> None:
        self._sink_unusable = unusable

    def update(self) -> None:
        """Enter or leave the hard limit, and report the count."""
        if not self._hard_limited and self._count >= self._bound * HARD_LIMIT_FACTOR:
            self._hard_limited = True
            _log.warning("in-flight hard limit reached; pausing", extra={"in_flight": self._count})
        elif self._hard_limited and self._count < self._bound:
            self._hard_limited = False
        self._observer.in_flight(self._count)

    def wish(self, held: frozenset[Partition]) -> PauseWish:
        return self._hard_limited or self._sink_unusable, held


class PauseObserver(Protocol):
    def paused_partitions(self, count: int) -> None: ...


class Pauses:
    """What the client has paused; Kafka thread only (rebalance callbacks included)."""

    def __init__(self, observer: PauseObserver) -> None:
        self._observer = observer
        self._applied: PauseWish = (False, frozenset())
        self._paused: set[Partition] = set()

    def apply(self, consumer: Consumer, wish: PauseWish) -> None:
        """Pause everything, or just the held partitions; resume only what this paused."""
        if wish == self._applied:
            return
        pause_all, held = wish
        assigned = {(tp.topic, tp.partition): tp for tp in consumer.assignment()}
        wanted = set(assigned) if pause_all else set(held & assigned.keys())
        to_pause = [assigned[p] for p in wanted - self._paused]
        to_resume = [assigned[p] for p in self._paused - wanted if p in assigned]
        if to_pause:
            consumer.pause(to_pause)
        if to_resume:
            consumer.resume(to_resume)
        self._paused = wanted
        self._applied = wish
        self._observer.paused_partitions(len(wanted))

    def assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Newly assigned partitions start paused while everything is."""
        if not self._applied[0]:
            return
        consumer.pause(partitions)
        self._paused.update((tp.topic, tp.partition) for tp in partitions)
        self._observer.paused_partitions(len(self._paused))

    def forget(self, partitions: Iterable[Partition]) -> None:
        """Partitions revoked or lost: the client forgot their pause with them."""
        self._paused -= set(partitions)
