"""The customer state of every partition this instance owns: restore, decide, apply, forget."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

from consumer.state.changelog import Changelog, ChangelogRecord
from consumer.state.fold import Decision
from consumer.state.store import META_KEY, PartitionStore, encode_meta
from consumer.state.versions import CustomerVersions
from schemas.model import InteractionCompleted

_log = logging.getLogger(__name__)


def restore_store(
    store: PartitionStore, partition: int, records: Iterable[ChangelogRecord]
) -> None:
    """Apply a changelog partition's records, in log order, to ``store``."""
    for key, value in records:
        try:
            store.restore(key, value)
        except (ValueError, UnicodeDecodeError) as exc:
            # Not ours (someone wrote to the topic by hand): skip it, say so. The customer's
            # next event then compares with the horizon, as after an eviction.
            _log.warning(
                "unreadable customer-state record skipped",
                extra={"partition": partition, "reason": str(exc)},
            )


class CustomerStates:
    """Keyed by partition number: the input and the changelog are co-partitioned.

    Every method but :meth:`restore`'s reading runs on the event loop's thread. Records of one
    customer are handled one at a time (the engine's key order), so a customer's versions never
    change between :meth:`decide` and :meth:`applied`.
    """

    def __init__(
        self, changelog: Changelog, *, retention_ms: int, max_customers_per_partition: int
    ) -> None:
        self._changelog = changelog
        self._retention_ms = retention_ms
        self._max_customers = max_customers_per_partition
        self._stores: dict[int, PartitionStore] = {}

    async def restore(self, partition: int) -> PartitionStore:
        """Read the partition's changelog into a fresh store (in a worker thread) and own it."""
        started = time.monotonic()
        store = await asyncio.to_thread(self._read, partition)
        self._stores[partition] = store
        _log.info(
            "customer state restored",
            extra={
                "partition": partition,
                "customers": len(store),
                "horizon_ms": None if store.horizon is None else store.horizon.completed_at_ms,
                "seconds": round(time.monotonic() - started, 3),
            },
        )
        return store

    def _read(self, partition: int) -> PartitionStore:
        store = PartitionStore(self._retention_ms, self._max_customers)
        restore_store(store, partition, self._changelog.read(partition))
        return store

    def drop(self, partition: int) -> None:
        self._stores.pop(partition, None)

    def store(self, partition: int) -> PartitionStore:
        """The partition's store; an empty one when it was never restored (unit use)."""
        store = self._stores.get(partition)
        if store is None:
            store = self._stores[partition] = PartitionStore(
                self._retention_ms, self._max_customers
            )
        return store

    def decide(
        self, partition: int, event: InteractionCompleted, record_timestamp_ms: int
    ) -> Decision:
        store = self.store(partition)
        store.observe(record_timestamp_ms)
        return store.decide(event)

    async def applied(self, partition: int, customer_id: str, versions: CustomerVersions) -> None:
        """The sink holds ``versions`` now: remember them, durably, before the offset moves.

        Nothing is written for a partition revoked meanwhile: its next owner restored the
        changelog already, and a record from here would be a late write by a former owner.
        """
        store = self._stores.get(partition)
        if store is None:
            _log.info(
                "state change of a revoked partition not written", extra={"partition": partition}
            )
            return
        value = store.apply(customer_id, versions)
        await self._changelog.write(partition, customer_id.encode(), value)
        if store.evictions_due():
            await self._evict(partition, store)

    async def _evict(self, partition: int, store: PartitionStore) -> None:
        eviction = store.evict()
        if not eviction.customer_ids:
            return
        # The horizon first: once any tombstone is durable, a restore must know the horizon.
        await self._changelog.write(partition, META_KEY, encode_meta(eviction.horizon))
        for customer_id in eviction.customer_ids:
            self._changelog.write_nowait(partition, customer_id.encode(), None)
        _log.info(
            "customer state evicted",
            extra={
                "partition": partition,
                "customers": len(eviction.customer_ids),
                "kept": len(store),
                "horizon_ms": None
                if eviction.horizon is None
                else eviction.horizon.completed_at_ms,
            },
        )

    def customers(self) -> int:
        return sum(len(store) for store in self._stores.values())
