"""Per-key FIFO queues: at most one record of a key is being processed at any time."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

Item = TypeVar("Item")


class KeyedQueues(Generic[Item]):
    """The head of each key's queue is the record in progress; the rest wait behind it."""

    def __init__(self) -> None:
        self._queues: dict[Hashable, deque[Item]] = {}

    def push(self, key: Hashable, item: Item) -> bool:
        """Queue ``item``; True when the key was idle and the caller should start it now."""
        queue = self._queues.get(key)
        if queue is None:
            self._queues[key] = deque([item])
            return True
        queue.append(item)
        return False

    def finish_head(self, key: Hashable) -> Item | None:
        """Drop the finished head; return the next item of the key to start, if any."""
        queue = self._queues[key]
        queue.popleft()
        if queue:
            return queue[0]
        del self._queues[key]
        return None

    def drop_where(self, belongs: Callable[[Hashable], bool]) -> list[Item]:
        """Remove every queue whose key matches (a revoked partition's); return what was queued."""
        dropped: list[Item] = []
        for key in [k for k in self._queues if belongs(k)]:
            dropped.extend(self._queues.pop(key))
        return dropped

    @property
    def active_keys(self) -> int:
        return len(self._queues)
