"""One partition's customer state in memory: the versions each customer's attributes hold.

The values are the changelog records themselves (compact JSON, decoded on access), kept in the
order their customers last changed, so restoring is a copy and eviction walks from the front.

**Changelog record format** (the state topic; key = customer id in UTF-8, as on the input topic):
``{"t": <stream time of the change, epoch ms>, "v": [[<completed_at ms>, "<event id>"], ...],
"a": {"<attribute>": <index into v>, ...}}``. Versions are listed once however many attributes
share them (usually one event set them all). A tombstone (no value) removes a customer; the key
:data:`META_KEY` holds ``{"horizon": [<ms>, "<event id>"] | null}``.

**Retention.** Memory is bounded twice over: a customer whose state did not change for
``retention_ms`` of *stream time* (the newest record timestamp the partition has seen, a clock that
moves only with the data, as in Kafka Streams) is evicted, and so are the least recently changed
customers beyond ``max_customers``. Every eviction raises the *horizon* to the newest version it
forgot; the fold compares what it no longer knows with the horizon (see :mod:`consumer.state.fold`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final

from consumer.state.fold import Decision, decide
from consumer.state.versions import NO_VERSIONS, CustomerVersions, Version
from schemas.model import InteractionCompleted

META_KEY: Final = b"\x00segstream.state.meta"
_CHANGED_PREFIX: Final = b'{"t":'
# Evictions run when stream time has moved this share of the retention since the last run (or
# the customer bound is passed). The walk is cheap per evicted entry, but each run also scans
# past deleted slots of the dict: 1 % of the retention (15 minutes of a day) keeps that rare
# while holding at most 1 % more than the retention asks for.
_SWEEP_SHARE: Final = 0.01
# Past the customer bound, evict down to this share of it in one go, not one per new customer.
_LOW_WATER_SHARE: Final = 0.9

_log = logging.getLogger(__name__)


def encode_versions(versions: CustomerVersions, changed_ms: int) -> bytes:
    distinct = sorted(set(versions.values()))
    index = {version: position for position, version in enumerate(distinct)}
    document = {
        "t": changed_ms,
        "v": [[version.completed_at_ms, version.event_id] for version in distinct],
        "a": {name: index[version] for name, version in sorted(versions.items())},
    }
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def decode_versions(value: bytes) -> tuple[CustomerVersions, int]:
    """The versions and the change's stream time; raises ``ValueError`` for a malformed record."""
    try:
        document = json.loads(value)
        versions = [Version(int(ms), str(event_id)) for ms, event_id in document["v"]]
        by_name = {str(name): versions[int(i)] for name, i in document["a"].items()}
        return CustomerVersions(by_name), int(document["t"])
    except (KeyError, TypeError, IndexError, ValueError, AttributeError) as exc:
        raise ValueError(f"not a customer-state record: {type(exc).__name__}: {exc}") from exc


def encode_meta(horizon: Version | None) -> bytes:
    pair = None if horizon is None else [horizon.completed_at_ms, horizon.event_id]
    return json.dumps({"horizon": pair}, separators=(",", ":")).encode()


def decode_meta(value: bytes) -> Version | None:
    pair = json.loads(value)["horizon"]
    return None if pair is None else Version(int(pair[0]), str(pair[1]))


@dataclass
class Eviction:
    """Customers just forgotten; write :attr:`horizon` before their tombstones."""

    horizon: Version | None
    customer_ids: list[str] = field(default_factory=list)


class PartitionStore:
    """Not thread-safe: every call from the event loop's thread."""

    def __init__(self, retention_ms: int, max_customers: int) -> None:
        if retention_ms <= 0 or max_customers < 1:
            raise ValueError("retention and the customer bound must be positive")
        self._retention_ms = retention_ms
        self._max_customers = max_customers
        self._customers: dict[str, bytes] = {}
        self._horizon: Version | None = None
        self._stream_time_ms: int | None = None
        self._swept_at_ms: int | None = None

    def __len__(self) -> int:
        return len(self._customers)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._customers))

    @property
    def horizon(self) -> Version | None:
        return self._horizon

    @property
    def stream_time_ms(self) -> int | None:
        return self._stream_time_ms

    def versions(self, customer_id: str) -> CustomerVersions:
        value = self._customers.get(customer_id)
        if value is None:
            return NO_VERSIONS
        try:
            return decode_versions(value)[0]
        except ValueError as exc:
            # Not written by a consumer (restored as is, decoded only now): forget it.
            del self._customers[customer_id]
            _log.warning("unreadable customer-state record dropped", extra={"reason": str(exc)})
            return NO_VERSIONS

    def decide(self, event: InteractionCompleted) -> Decision:
        return decide(event, self.versions(event.customer_id), self._horizon)

    def observe(self, record_timestamp_ms: int) -> None:
        """A record of the partition was handled: stream time moves to its timestamp."""
        if self._stream_time_ms is None or record_timestamp_ms > self._stream_time_ms:
            self._stream_time_ms = record_timestamp_ms
        if self._swept_at_ms is None:
            self._swept_at_ms = record_timestamp_ms

    def apply(self, customer_id: str, versions: CustomerVersions) -> bytes:
        """The sink holds ``versions`` now; returns the changelog value to write."""
        value = encode_versions(versions, self._stream_time_ms or 0)
        self._customers.pop(customer_id, None)  # re-inserted last: the most recently changed
        self._customers[customer_id] = value
        return value

    def evictions_due(self) -> bool:
        if len(self._customers) > self._max_customers:
            return True
        if self._stream_time_ms is None or self._swept_at_ms is None:
            return False
        return self._stream_time_ms - self._swept_at_ms >= self._retention_ms * _SWEEP_SHARE

    def evict(self) -> Eviction:
        """Forget customers past the retention or beyond the bound, oldest change first."""
        now = self._stream_time_ms or 0
        self._swept_at_ms = now
        cutoff = now - self._retention_ms
        keep = self._max_customers
        if len(self._customers) > self._max_customers:
            keep = int(self._max_customers * _LOW_WATER_SHARE)
        eviction = Eviction(self._horizon)
        for customer_id, value in self._customers.items():
            changed_ms = _changed_ms(value)
            if changed_ms >= cutoff and len(self._customers) - len(eviction.customer_ids) <= keep:
                break
            eviction.customer_ids.append(customer_id)
            try:
                newest = decode_versions(value)[0].newest
            except ValueError:
                continue  # nothing known to forget
            if newest is not None and (eviction.horizon is None or newest > eviction.horizon):
                eviction.horizon = newest
        for customer_id in eviction.customer_ids:
            del self._customers[customer_id]
        self._horizon = eviction.horizon
        return eviction

    def restore(self, key: bytes, value: bytes | None) -> None:
        """Apply one changelog record, in log order. Raises ``ValueError`` for a malformed one.

        The fast path (a customer's first record) only reads the change time off the front of
        the value; the value itself is decoded when the customer's next event needs it.
        """
        if key == META_KEY:
            if value is not None:
                self._horizon = _later(self._horizon, decode_meta(value))
            return
        customer_id = key.decode()
        if value is None:
            self._customers.pop(customer_id, None)
            return
        known = self._customers.pop(customer_id, None)
        if known is None:
            changed_ms = _changed_ms(value)
        else:
            # Per attribute the larger version: a record a fenced instance wrote late can only
            # add what it knew, never take back what the partition's owner applied since.
            earlier, _ = decode_versions(known)
            versions, changed_ms = decode_versions(value)
            merged = {
                name: max(v for v in (earlier.get(name), versions.get(name)) if v is not None)
                for name in {*earlier, *versions}
            }
            value = encode_versions(CustomerVersions(merged), changed_ms)
        self._customers[customer_id] = value
        self.observe(changed_ms)


def _changed_ms(value: bytes) -> int:
    """The ``t`` of a changelog value, read off its front (:func:`encode_versions` writes it
    first); raises ``ValueError`` when the value is not one of ours."""
    if not value.startswith(_CHANGED_PREFIX):
        raise ValueError("not a customer-state record: no leading change time")
    end = value.find(b",", len(_CHANGED_PREFIX))
    return int(value[len(_CHANGED_PREFIX) : end if end >= 0 else None])


def _later(first: Version | None, second: Version | None) -> Version | None:
    if first is None:
        return second
    if second is None:
        return first
    return max(first, second)
