"""The ledger: one JSON line per event the bridge accepted (answered 202), in acceptance order.

Other tools compare it with what reached Kafka or the CRM to check loss and per-customer order:
for every customer, ``seq`` runs 1, 2, 3, ... in the order the events were sent and accepted,
and the same number is in the event itself as ``attributes["seq"]``.

Fields: ``event_id`` (the idempotency key, also the record's ``event-id`` header), ``customer_id``
(the Kafka key), ``seq``, ``webhook_id``, ``attempts`` (sends until the 202, sender retries
included), ``accepted_at`` (ISO-8601 UTC), ``partition`` and ``offset`` (as the bridge reported).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import IO


@dataclass(frozen=True)
class LedgerEntry:
    event_id: str
    customer_id: str
    seq: int
    webhook_id: str
    attempts: int
    accepted_at: str
    partition: int
    offset: int


class LedgerWriter:
    """Appends and flushes each line at once, so a reader (or a crash) never sees half a run."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file: IO[str] = path.open("a", encoding="utf-8")

    def write(self, entry: LedgerEntry) -> None:
        self._file.write(json.dumps(asdict(entry), separators=(",", ":")) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> LedgerWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def read_ledger(path: Path) -> list[LedgerEntry]:
    """Every complete line of the ledger (a line still being written is skipped)."""
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.endswith("}"):
            entries.append(LedgerEntry(**json.loads(line)))
    return entries
