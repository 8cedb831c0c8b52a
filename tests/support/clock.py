"""A fake monotonic clock for asyncio code taking ``clock=`` and ``sleep=``: tests never wait."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def settle() -> None:
    """Let every ready task run until all of them wait on the fake clock (or on each other)."""
    for _ in range(50):
        await asyncio.sleep(0)


class FakeTime:
    """A monotonic clock that moves only when a test advances it; sleepers wake as it passes."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        deadline = self.now + max(seconds, 0.0)
        heapq.heappush(self._sleepers, (deadline, next(self._order), future))
        await future

    def next_deadline(self) -> float | None:
        while self._sleepers and self._sleepers[0][2].done():
            heapq.heappop(self._sleepers)
        return self._sleepers[0][0] if self._sleepers else None

    async def advance(self, seconds: float) -> None:
        target = self.now + seconds
        await settle()
        while (deadline := self.next_deadline()) is not None and deadline <= target:
            _, _, future = heapq.heappop(self._sleepers)
            self.now = max(self.now, deadline)
            future.set_result(None)
            await settle()
        self.now = target
        await settle()

    async def run(self, awaitable: Awaitable[T]) -> T:
        """Await ``awaitable``, jumping the clock to each sleeper's deadline in turn."""
        task = asyncio.ensure_future(awaitable)
        while True:
            await settle()
            if task.done():
                return task.result()
            deadline = self.next_deadline()
            if deadline is None:
                task.cancel()
                raise AssertionError("blocked with no sleeper to wake: would wait forever")
            await self.advance(deadline - self.now)
