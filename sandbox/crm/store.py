"""The CRM simulator's in-memory state: customers, the write log, idempotency records, stats.

Every mutation is synchronous, and the simulator calls them from one event loop without awaiting
in between, so a request's check-then-write (idempotency lookup, existence check, update) is
atomic with respect to other requests.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

JsonObject = dict[str, Any]
Operation = Literal["update", "create"]


def iso_utc_ms(moment: datetime | None = None) -> str:
    """``moment`` (default: now) as ISO-8601 UTC with milliseconds: ``2026-11-28T10:15:00.123Z``."""
    when = (moment or datetime.now(UTC)).astimezone(UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def fingerprint(method: str, path: str, body: Any) -> str:
    """A digest of what a request asks for: method, path and body, key order and spacing aside.

    The path is part of it, so one Idempotency-Key sent to two endpoints counts as reuse with a
    different payload, as it does at Stripe and in the IETF Idempotency-Key draft.
    """
    canonical = json.dumps(
        [method.upper(), path, body], sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass
class Customer:
    """One CRM customer record."""

    id: str
    attributes: JsonObject
    last_updated: str | None
    created_at: str
    version: int = 0

    def as_json(self) -> JsonObject:
        return {
            "id": self.id,
            "attributes": copy.deepcopy(self.attributes),
            "last_updated": self.last_updated,
            "created_at": self.created_at,
            "version": self.version,
        }


@dataclass(frozen=True)
class WriteEntry:
    """One applied write, in arrival order. Rejected and failed requests are not writes."""

    customer_id: str
    idempotency_key: str | None
    received_at: str
    status: int
    operation: Operation
    body: JsonObject

    def as_json(self) -> JsonObject:
        return {
            "customer_id": self.customer_id,
            "idempotency_key": self.idempotency_key,
            "received_at": self.received_at,
            "status": self.status,
            "operation": self.operation,
            "body": copy.deepcopy(self.body),
        }


@dataclass(frozen=True)
class IdempotencyRecord:
    """The answer given to the first request with a key, replayed to later ones."""

    fingerprint: str
    status: int
    body: JsonObject


@dataclass(frozen=True)
class RequestEntry:
    """One /v1 request as the CRM saw it, whatever its answer (429s and 5xx included)."""

    received_at: str
    answered_at: str
    path: str
    status: int
    idempotency_key: str | None
    replayed: bool
    retry_after_ms: int | None = None  # what a 429 (or 503) told the client to wait

    def as_json(self) -> JsonObject:
        return {
            "retry_after_ms": self.retry_after_ms,
            "received_at": self.received_at,
            "answered_at": self.answered_at,
            "path": self.path,
            "status": self.status,
            "idempotency_key": self.idempotency_key,
            "replayed": self.replayed,
        }


# The request log is for tests and benchmarks (hundreds of thousands of requests at most); past
# this many the oldest entries go, so a simulator left running for days stays small.
REQUEST_LOG_LIMIT = 500_000


@dataclass
class Stats:
    """Counts of /v1 requests (the CRM API proper; inspection calls are not counted)."""

    requests: int = 0
    by_status: Counter[int] = field(default_factory=Counter)
    replayed: int = 0

    def as_json(self) -> JsonObject:
        return {
            "requests": self.requests,
            "by_status": {str(code): n for code, n in sorted(self.by_status.items())},
            "replayed": self.replayed,
        }


class CrmStore:
    """All state of one simulator instance."""

    def __init__(self) -> None:
        self._customers: dict[str, Customer] = {}
        self._writes: list[WriteEntry] = []
        self._idempotency: dict[str, IdempotencyRecord] = {}
        self._executing: set[str] = set()
        self._requests: deque[RequestEntry] = deque(maxlen=REQUEST_LOG_LIMIT)
        self.stats = Stats()

    # -- customers -------------------------------------------------------------------------

    def customer(self, customer_id: str) -> Customer | None:
        return self._customers.get(customer_id)

    def create_customer(self, customer_id: str, attributes: JsonObject) -> Customer:
        """Create a customer at version 0; the caller has checked that it does not exist."""
        if customer_id in self._customers:
            msg = f"customer {customer_id!r} already exists"
            raise KeyError(msg)
        created = Customer(
            id=customer_id,
            attributes=copy.deepcopy(attributes),
            last_updated=None,
            created_at=iso_utc_ms(),
        )
        self._customers[customer_id] = created
        return created

    def update_customer(
        self, customer_id: str, attributes: JsonObject, last_updated: str
    ) -> Customer:
        """Set the attributes given (the others keep their values) and bump the version; the
        customer must exist."""
        current = self._customers[customer_id]
        current.attributes.update(copy.deepcopy(attributes))
        current.last_updated = last_updated
        current.version += 1
        return current

    # -- write log -------------------------------------------------------------------------

    def log_write(
        self,
        *,
        customer_id: str,
        idempotency_key: str | None,
        received_at: str,
        status: int,
        operation: Operation,
        body: JsonObject,
    ) -> None:
        self._writes.append(
            WriteEntry(
                customer_id=customer_id,
                idempotency_key=idempotency_key,
                received_at=received_at,
                status=status,
                operation=operation,
                body=copy.deepcopy(body),
            )
        )

    def writes(self, customer_id: str | None = None) -> list[WriteEntry]:
        """Applied writes in arrival order, all of them or one customer's."""
        if customer_id is None:
            return list(self._writes)
        return [entry for entry in self._writes if entry.customer_id == customer_id]

    # -- idempotency -----------------------------------------------------------------------

    def idempotency_record(self, key: str) -> IdempotencyRecord | None:
        return self._idempotency.get(key)

    def remember(self, key: str, record: IdempotencyRecord) -> None:
        self._idempotency[key] = record

    def begin_executing(self, key: str) -> bool:
        """Mark ``key`` as held by a request that is executing; False if one already is."""
        if key in self._executing:
            return False
        self._executing.add(key)
        return True

    def executing(self, key: str) -> bool:
        return key in self._executing

    def executing_count(self) -> int:
        """Requests with an Idempotency-Key executing now (the keys in use)."""
        return len(self._executing)

    def end_executing(self, key: str) -> None:
        self._executing.discard(key)

    # -- stats -----------------------------------------------------------------------------

    def log_request(self, entry: RequestEntry) -> None:
        self._requests.append(entry)

    def requests(self) -> list[RequestEntry]:
        """Every /v1 request in the order they were answered."""
        return list(self._requests)

    def count(self, status: int, *, replayed: bool = False) -> None:
        self.stats.requests += 1
        self.stats.by_status[status] += 1
        if replayed:
            self.stats.replayed += 1

    # -- reset -----------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget every customer, write, idempotency record and count. Keys held by requests
        still executing stay held until those finish."""
        self._customers.clear()
        self._writes.clear()
        self._idempotency.clear()
        self._requests.clear()
        self.stats = Stats()
