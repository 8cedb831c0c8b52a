"""Dry run: would a replayed record change nothing, because the customer's state is newer?

Answered with the consumer's own customer state and rule (:mod:`consumer.state`), never a copy:
the consumer group's changelog partition is read into a :class:`~consumer.state.PartitionStore`
(read only, by ``assign()``; nothing is written anywhere) and each selected record's event goes
through :meth:`~consumer.state.PartitionStore.decide`. An event that moves no attribute forward
(stale, a duplicate of what is applied, or behind the state's horizon) is *superseded*: the
consumer would send nothing for it. One that moves something is applied to the in-memory store,
so a later record of the same customer in the same run is judged as the consumer would judge it.

The customer's partition is the dead letter's original partition (the input topic and the
changelog are co-partitioned). A record that cannot be decoded is not superseded: replayed, it
is dead-lettered again.
"""

from __future__ import annotations

import logging
import sys
from typing import Final

from consumer.clients import KafkaClients
from consumer.dlq.records import DeadLetter, TopicCodecs
from consumer.errors import ConsumerError, StateError
from consumer.state import PartitionStore, read_changelog, restore_store
from consumer.topics import describe_topic
from schemas.errors import SchemaError

# The store only answers questions here; it never evicts (the consumer's retention settings do
# not matter for that), so its bounds are as wide as they go.
_NEVER: Final = sys.maxsize
_log = logging.getLogger(__name__)


class SupersededCheck:
    def __init__(
        self,
        clients: KafkaClients,
        changelog_topic: str,
        *,
        codecs: TopicCodecs,
        timeout_s: float,
    ) -> None:
        self.changelog_topic = changelog_topic
        self._clients = clients
        self._timeout_s = timeout_s
        self._codecs = codecs
        self._stores: dict[int, PartitionStore] = {}
        self.unknown: str | None = None  # why the count cannot be trusted, once it cannot

    def available(self) -> bool:
        """Does the consumer group keep customer state (its changelog topic exists)?"""
        try:
            topic = describe_topic(self._clients.admin(), self.changelog_topic, self._timeout_s)
        except ConsumerError as exc:
            self.unknown = str(exc)
            return False
        if topic is None:
            self.unknown = f"no customer-state changelog {self.changelog_topic}"
            return False
        return True

    def __call__(self, record: DeadLetter) -> bool:
        origin = record.origin
        if origin is None or self.unknown is not None:
            return False
        try:
            event = self._codecs.of(record).decode(record.value or b"")
        except SchemaError:
            return False
        try:
            store = self._store(origin.partition)
        except StateError as exc:
            self.unknown = str(exc)
            _log.warning("superseded count unknown", extra={"reason": str(exc)})
            return False
        decision = store.decide(event)
        if decision.outcome == "forward":
            store.apply(event.customer_id, decision.versions)
            return False
        return True

    def _store(self, partition: int) -> PartitionStore:
        store = self._stores.get(partition)
        if store is None:
            store = PartitionStore(_NEVER, _NEVER)
            records = read_changelog(
                self._clients, self.changelog_topic, partition, self._timeout_s
            )
            restore_store(store, partition, records)
            self._stores[partition] = store
        return store
