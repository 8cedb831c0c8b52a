"""Which dead letters a command works on: the filters of ``inspect``, ``replay`` and ``park``.

Every filter narrows the selection (they combine with AND); a filter given several times accepts
any of its values (OR). Partitions and offsets are those of the *failed record* in its original
topic (the ``segstream.dlq.partition`` / ``.offset`` headers), the numbers the consumer's logs
and metrics show; time is when the record was dead-lettered (``segstream.dlq.last.failure``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from consumer.dlq.records import DeadLetter

STAGES: Final = ("decode", "validate", "sink")
_DURATION: Final = re.compile(r"^(\d+)([smhd])$")
_UNIT_SECONDS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_RANGE: Final = re.compile(r"^(\d+)(?::(\d*)-(\d*))?$")


class SelectionError(ValueError):
    """A filter value that cannot be understood; the message says which and why."""


@dataclass(frozen=True)
class OffsetRange:
    """``--partition 3`` (all of it) or ``--partition 3:100-200`` (offsets 100 to 200, both
    included; either end may be left open: ``3:100-``, ``3:-200``)."""

    partition: int
    first: int | None = None
    last: int | None = None

    @classmethod
    def parse(cls, text: str) -> OffsetRange:
        match = _RANGE.match(text.strip())
        if match is None:
            raise SelectionError(
                f"--partition {text!r}: expected PARTITION or PARTITION:FIRST-LAST (e.g. 3:100-200)"
            )
        partition, first, last = match.groups()
        result = cls(int(partition), int(first) if first else None, int(last) if last else None)
        if result.first is not None and result.last is not None and result.first > result.last:
            raise SelectionError(f"--partition {text!r}: first offset is after the last")
        return result

    def contains(self, partition: int, offset: int) -> bool:
        return (
            partition == self.partition
            and (self.first is None or offset >= self.first)
            and (self.last is None or offset <= self.last)
        )

    def __str__(self) -> str:
        if self.first is None and self.last is None:
            return str(self.partition)
        first = "" if self.first is None else self.first
        last = "" if self.last is None else self.last
        return f"{self.partition}:{first}-{last}"


def parse_time(text: str, now: datetime) -> datetime:
    """ISO-8601 with a zone (``2026-11-28T09:00Z``), a date (midnight UTC), or a duration back
    from ``now`` (``90m``, ``2h``, ``1d``, ``30s``)."""
    value = text.strip()
    duration = _DURATION.match(value)
    if duration is not None:
        amount, unit = duration.groups()
        return now - timedelta(seconds=int(amount) * _UNIT_SECONDS[unit])
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise SelectionError(
            f"{text!r}: expected ISO-8601 (2026-11-28T09:00:00Z), a date, or 90m / 2h / 1d"
        ) from exc
    if parsed.tzinfo is None:
        if len(value) == 10:  # a bare date
            return parsed.replace(tzinfo=UTC)
        raise SelectionError(f"{text!r}: give a time zone, for example a trailing Z for UTC")
    return parsed.astimezone(UTC)


@dataclass(frozen=True)
class Selection:
    """The filters; :meth:`matches` is the whole rule."""

    error_classes: frozenset[str] = frozenset()
    stages: frozenset[str] = frozenset()
    since: datetime | None = None  # included
    until: datetime | None = None  # excluded
    keys: frozenset[str] = frozenset()
    partitions: tuple[OffsetRange, ...] = ()

    def __post_init__(self) -> None:
        unknown = sorted(self.stages - set(STAGES))
        if unknown:
            raise SelectionError(f"--stage {', '.join(unknown)}: expected one of {STAGES}")
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise SelectionError("--since must be before --until")

    @property
    def is_everything(self) -> bool:
        """No filter at all."""
        return not (
            self.error_classes
            or self.stages
            or self.since
            or self.until
            or self.keys
            or self.partitions
        )

    def matches(self, record: DeadLetter) -> bool:
        origin = record.origin
        return (
            (not self.error_classes or record.error_class in self.error_classes)
            and (not self.stages or record.stage in self.stages)
            and (self.since is None or record.dead_lettered_at >= self.since)
            and (self.until is None or record.dead_lettered_at < self.until)
            and (not self.keys or record.customer_id in self.keys)
            and (
                not self.partitions
                or (
                    origin is not None
                    and any(r.contains(origin.partition, origin.offset) for r in self.partitions)
                )
            )
        )

    def describe(self) -> dict[str, Any]:
        """The filters as given, for the audit record and the JSON output. Keys are customer
        ids: the audit record says how many, never which."""
        return {
            "error_class": sorted(self.error_classes),
            "stage": sorted(self.stages),
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "keys": len(self.keys),
            "partition": [str(r) for r in self.partitions],
        }
