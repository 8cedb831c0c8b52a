"""The audit topic: two records per ``replay`` or ``park`` run, dry runs included.

A ``started`` record before the run touches anything (who, when, what was asked) and a
``finished`` record at the end (what was done, how it ended). A ``started`` with no
``finished`` is a run that was killed; what it had committed is in its counts' place: read the
replay group's offsets, or the provenance headers of the records it wrote. The key is the run
id, the value one JSON object (:class:`AuditRecord`). The audit topic is the only thing a dry run
writes to.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from confluent_kafka import KafkaError
from pydantic import BaseModel

from consumer.clients import KafkaClients
from consumer.dlq.errors import KafkaUnavailableError

Outcome = Literal["ok", "partial", "interrupted", "terminated", "fenced", "failed", "usage"]


class ReasonCount(BaseModel):
    stage: str
    error_class: str
    count: int


class AuditRecord(BaseModel):
    run_id: str
    event: Literal["started", "finished"]
    command: Literal["replay", "park"]
    dry_run: bool
    operator: str
    time: datetime
    dead_letter_topic: str
    group: str
    # The filters as given (customer ids in ``--key`` only counted, never written).
    selection: dict[str, Any]
    # ``max``, ``rate_per_s``, ``max_replays`` (replay), ``destination`` topics.
    options: dict[str, Any]
    # ``finished`` only: scanned, already_handled, not_selected, selected, replayed, parked,
    # parked_max_replays, duplicate, unreplayable (and superseded, for a dry run once known).
    counts: dict[str, int] | None = None
    reasons: list[ReasonCount] | None = None
    outcome: Outcome | None = None
    exit_code: int | None = None
    stopped: str | None = None  # max | signal | ledger-full
    error: str | None = None


class AuditLog:
    """Appends records, each acknowledged by the broker (``acks=all``) before it returns."""

    def __init__(self, clients: KafkaClients, topic: str, *, timeout_s: float) -> None:
        self.topic = topic
        self._timeout_s = timeout_s
        self._producer = clients.producer(
            "segstream-dlq-audit",
            {
                "enable.idempotence": True,
                "acks": "all",
                "message.timeout.ms": int(timeout_s * 1000),
            },
        )

    def append(self, record: AuditRecord) -> None:
        errors: list[KafkaError] = []
        acked: list[bool] = []

        def delivered(error: KafkaError | None, _: Any) -> None:
            if error is None:
                acked.append(True)
            else:
                errors.append(error)

        self._producer.produce(
            self.topic,
            key=record.run_id.encode(),
            value=record.model_dump_json().encode(),
            on_delivery=delivered,
        )
        self._producer.flush(self._timeout_s)
        if errors or not acked:
            reason = errors[0].str() if errors else "no acknowledgement"
            raise KafkaUnavailableError(f"audit record not written to {self.topic}: {reason}")

    def close(self) -> None:
        self._producer.flush(self._timeout_s)
