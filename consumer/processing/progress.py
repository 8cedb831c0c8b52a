"""Which offsets of a partition are finished, and so how far it is safe to commit."""

from __future__ import annotations

from collections import deque


class PartitionProgress:
    """Offsets handed out in fetch order, finished in any order.

    The commit position is the lowest offset not yet finished (Kafka commits "the next offset to
    read"), so a restart re-reads every unfinished record and nothing after it is skipped. Records
    finished above an unfinished one are re-read too; the sink's idempotency makes that harmless.
    """

    def __init__(self) -> None:
        self._pending: deque[int] = deque()
        self._finished: set[int] = set()
        self._position: int | None = None  # everything below is finished

    def track(self, offset: int) -> None:
        if self._pending and offset <= self._pending[-1]:
            raise ValueError(f"offset {offset} tracked out of order (last {self._pending[-1]})")
        if self._position is not None and offset < self._position:
            raise ValueError(f"offset {offset} is below the finished position {self._position}")
        self._pending.append(offset)

    def finish(self, offset: int) -> None:
        self._finished.add(offset)
        while self._pending and self._pending[0] in self._finished:
            done = self._pending.popleft()
            self._finished.discard(done)
            self._position = done + 1

    @property
    def commit_position(self) -> int | None:
        """The offset to commit, or None when nothing of this partition was finished yet."""
        if self._pending:
            lowest_unfinished = self._pending[0]
            return lowest_unfinished if self._position is not None else None
        return self._position

    @property
    def unfinished(self) -> int:
        """Records not yet finished: tracked, and neither finished nor below the position. Those
        finished above an unfinished one wait in the pending list for it, but they are done and
        no longer in flight."""
        return len(self._pending) - len(self._finished)
