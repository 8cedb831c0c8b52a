"""``park``: move selected dead letters to the parked topic, for what must never be replayed.

The parked record keeps the dead letter's key, value and every header (its context says why it
failed) and adds ``segstream.parked.*``: reason ``operator``, the run, the time, and where it sat
in the dead-letter topic. Parked records are never read by ``replay``; the parked topic keeps
them until an operator deletes them (no retention limit when the tool creates it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from consumer.dlq.headers import parked_headers
from consumer.dlq.records import DeadLetter
from consumer.dlq.transfer import Action, Decision, Output

REASON_OPERATOR = "operator"


@dataclass(frozen=True)
class ParkChooser:
    parked_topic: str

    def __call__(self, record: DeadLetter, run_id: str, now: datetime) -> Decision:
        headers = parked_headers(record, REASON_OPERATOR, run_id, now)
        return Decision(Action.PARKED, Output(self.parked_topic, record.key, record.value, headers))
