"""``replay``: publish selected dead letters again to their original topic, once each.

Each record goes back to the topic it failed in, with its original key (so to the partition of
the customer's other events, by the same partitioner as the bridge), value and headers, plus
the ``segstream.replay.*`` provenance (:func:`consumer.dlq.headers.replay_headers`). The
consumer lets a record with ``segstream.replay.count`` past dedupe and applies it through the
customer-state rule, so a replayed (older) event changes only attributes for which it really is
the newest.

The loop guard: a record already replayed ``max_replays`` times is parked instead
(``segstream.parked.reason: max-replays``). A dead letter without the ``segstream.dlq.topic``
context cannot be replayed (nothing says where to), nor can one the consumer wrote without its
value (too large for the dead-letter topic: ``segstream.dlq.value.omitted``), nor one whose
topic a replay may not write to (:mod:`consumer.dlq.destinations`); all are left in place:
``park`` them (a record without its value is at its origin, re-produce it from there).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from consumer.dlq.headers import parked_headers, replay_headers
from consumer.dlq.records import DeadLetter
from consumer.dlq.transfer import Action, Decision, Output

REASON_MAX_REPLAYS = "max-replays"


def _anywhere(topic: str) -> bool:
    return True


@dataclass(frozen=True)
class ReplayChooser:
    parked_topic: str
    max_replays: int
    # Whether a record may be written to its origin topic (consumer/dlq/destinations.py).
    allowed: Callable[[str], bool] = _anywhere

    def __call__(self, record: DeadLetter, run_id: str, now: datetime) -> Decision:
        if record.replay_count >= self.max_replays:
            headers = parked_headers(record, REASON_MAX_REPLAYS, run_id, now)
            output = Output(self.parked_topic, record.key, record.value, headers)
            return Decision(Action.PARKED_MAX_REPLAYS, output)
        if (
            record.origin is None
            or record.value_omitted is not None
            or not self.allowed(record.origin.topic)
        ):
            return Decision(Action.UNREPLAYABLE)
        headers = replay_headers(record, record.origin, run_id, now)
        return Decision(
            Action.REPLAYED, Output(record.origin.topic, record.key, record.value, headers)
        )
