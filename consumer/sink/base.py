"""One contract for every sink: what to write for a customer, and how a write can fail.

*What* to write is decided before the sink sees it (:mod:`consumer.state`): a
:class:`CustomerUpdate` holds only the attributes that move the customer forward. *How* it is
written (retries, the rate limit, the circuit breaker) is :mod:`consumer.writer`'s. A sink turns
one update into calls on its system and sorts every failure by whom it is about, raising one of
:class:`consumer.errors.SinkRejectedError` (this payload), :class:`SinkUnavailableError` (the sink
is unwell: retry) or :class:`SinkUnusableError` (the sink cannot take any write: pause, probe).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True)
class CustomerUpdate:
    customer_id: str
    attributes: Mapping[str, Any]
    """CRM attribute name -> JSON value: exactly the attributes that move forward, never none."""
    last_updated: datetime
    """The customer's newest version time after this write (UTC); never moves backwards."""
    idempotency_key: str
    """Unique per event and delivery: the event id, with ``~r{n}`` for its n-th replay (a CRM may
    have stored the error answer of the first delivery under the bare id). A sink derives one key
    per request from it and sends the same bytes under the same key on every retry."""
    event_id: str


class Sink(Protocol):
    async def write(self, update: CustomerUpdate) -> None:
        """Apply the update; raise a :class:`consumer.errors.SinkError` kind when it was not."""

    async def close(self) -> None: ...
