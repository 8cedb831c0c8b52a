"""``inspect``: what is in the dead-letter topic and why, without changing anything.

Counts the records the filters select by error class, stage, hour of the failure (UTC) and
original partition, and shows the first ``--show N`` of them decoded with their headers. By
default only records the replay group has not handled yet are counted (those ``replay`` would
see); ``--include-handled`` counts the whole topic. Reads by ``assign()``: joins no group, commits
nothing, writes nothing (not even an audit record).

Decoded values never show ``caller_id`` (a phone number: personal data the tool has no need
for); customer ids are shown, since an operator needs them for ``--key``.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from consumer.dlq.reader import DeadLetterReader, PartitionEnd
from consumer.dlq.records import DeadLetter, TopicCodecs
from consumer.dlq.selection import Selection
from schemas.errors import SchemaError

MASKED: Final = "***"
_PERSONAL_FIELDS: Final = ("caller_id",)


@dataclass
class Inspection:
    topic: str
    group: str
    scanned: int = 0
    handled: int = 0  # records the replay group already replayed or parked
    matched: int = 0
    by_error_class: Counter[str] = field(default_factory=Counter)
    by_stage: Counter[str] = field(default_factory=Counter)
    by_hour: Counter[str] = field(default_factory=Counter)
    by_partition: Counter[str] = field(default_factory=Counter)
    by_replay_count: Counter[int] = field(default_factory=Counter)
    shown: list[dict[str, Any]] = field(default_factory=list)
    complete: bool = True  # False: interrupted before the end of the topic

    def as_json(self) -> dict[str, Any]:
        return {
            "dead_letter_topic": self.topic,
            "group": self.group,
            "scanned": self.scanned,
            "already_handled": self.handled,
            "matched": self.matched,
            "by_error_class": dict(self.by_error_class.most_common()),
            "by_stage": dict(self.by_stage.most_common()),
            "by_hour": dict(sorted(self.by_hour.items())),
            "by_original_partition": dict(sorted(self.by_partition.items())),
            "by_replay_count": {str(k): v for k, v in sorted(self.by_replay_count.items())},
            "records": self.shown,
            "complete": self.complete,
        }


def inspect(
    reader: DeadLetterReader,
    group: str,
    selection: Selection,
    *,
    include_handled: bool,
    show: int,
    decode: Callable[[DeadLetter], dict[str, Any]],
    stop: threading.Event,
) -> Inspection:
    result = Inspection(reader.topic, group)
    ledgers = reader.ledgers(reader.partitions())
    windows = reader.windows(ledgers, from_log_start=True)
    for item in reader.read(windows, stop):
        if isinstance(item, PartitionEnd):
            continue
        result.scanned += 1
        offset = item.offset() or 0
        handled = ledgers[item.partition() or 0].is_done(offset)
        result.handled += int(handled)
        if handled and not include_handled:
            continue
        record = DeadLetter.from_message(item)
        if not selection.matches(record):
            continue
        result.matched += 1
        result.by_error_class[record.error_class] += 1
        result.by_stage[record.stage] += 1
        result.by_hour[record.dead_lettered_at.strftime("%Y-%m-%dT%H:00Z")] += 1
        origin = record.origin
        result.by_partition[f"{origin.topic}[{origin.partition}]" if origin else "unknown"] += 1
        result.by_replay_count[record.replay_count] += 1
        if len(result.shown) < show:
            result.shown.append(shown_record(record, decode, handled=handled))
    result.complete = not stop.is_set()
    return result


def shown_record(
    record: DeadLetter, decode: Callable[[DeadLetter], dict[str, Any]], *, handled: bool
) -> dict[str, Any]:
    origin = record.origin
    return {
        "position": record.position(),
        "handled": handled,
        "key": record.customer_id,
        "dead_lettered_at": record.dead_lettered_at.isoformat(timespec="milliseconds"),
        "stage": record.stage,
        "error_class": record.error_class,
        "error_message": record.error_message,
        "attempts": record.attempts,
        "replay_count": record.replay_count,
        "origin": f"{origin.topic}[{origin.partition}]@{origin.offset}" if origin else None,
        "headers": [[name, value.decode(errors="replace")] for name, value in record.headers],
        **decode(record),
    }


class Decoder:
    """The value as its Avro record (no value checks: an invalid one shows what was wrong)."""

    def __init__(self, codecs: TopicCodecs) -> None:
        self._codecs = codecs

    def __call__(self, record: DeadLetter) -> dict[str, Any]:
        try:
            value = self._codecs.of(record).decode_record(record.value or b"")
        except SchemaError as exc:
            preview = (record.value or b"")[:32].hex()
            return {"value": None, "decode_error": str(exc), "value_hex_preview": preview}
        return {"value": _json_safe(value), "decode_error": None}


def _json_safe(value: dict[str, Any]) -> dict[str, Any]:
    safe: dict[str, Any] = {}
    for name, item in value.items():
        if name in _PERSONAL_FIELDS and item is not None:
            safe[name] = MASKED
        elif isinstance(item, datetime):
            safe[name] = item.isoformat(timespec="milliseconds")
        else:
            safe[name] = item
    return safe
