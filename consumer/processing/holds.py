"""Partitions held because one of their records cannot be read yet.

A record whose writer schema this consumer does not know (a newer producer during a rolling
upgrade, a schema registry that does not answer) is not poison: dead-lettering it would lose a
good event, skipping it would break the customer's order. Its partition is held instead: no more
of it is fetched, the record waits (its offset is never committed past) and is tried again now and
then, and the other partitions keep flowing. When the partition moves to an instance that can read
the record (the upgraded one), that instance carries on from the held offset.
"""

from __future__ import annotations

from collections.abc import Hashable

Partition = tuple[str, int]


class PartitionHolds:
    """Which records hold which partition, and why. Event loop thread only; cheap to read."""

    def __init__(self) -> None:
        self._holders: dict[Partition, dict[Hashable, str]] = {}

    def hold(self, partition: Partition, holder: Hashable, reason: str) -> bool:
        """``holder`` (a record) holds ``partition``; True when the partition was not held."""
        holders = self._holders.setdefault(partition, {})
        newly = not holders
        holders[holder] = reason
        return newly

    def release(self, partition: Partition, holder: Hashable) -> bool:
        """``holder`` no longer holds it; True when that freed the partition."""
        holders = self._holders.get(partition)
        if holders is None or holder not in holders:
            return False
        del holders[holder]
        if holders:
            return False
        del self._holders[partition]
        return True

    def held(self) -> frozenset[Partition]:
        return frozenset(self._holders)

    def reason(self, partition: Partition) -> str | None:
        holders = self._holders.get(partition)
        return next(iter(holders.values())) if holders else None

    def __len__(self) -> int:
        return len(self._holders)
