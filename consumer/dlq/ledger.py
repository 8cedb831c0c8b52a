"""What the replay group has handled in one dead-letter partition, kept in its committed offset.

The model (README "Dead-letter replay" says the same for operators):

* The replay group's **committed offset** of a dead-letter partition is a low-water mark: every
  record before it has been handled (replayed or parked) by some run of the group, or is gone
  from the log.
* A run with filters handles only some records. The ones it handled *after* the first record it
  left alone are listed in the **commit's metadata** string: the offset ranges above the mark,
  as varint (gap, length) pairs, base64 (``v1:`` prefix). This is how Confluent Parallel Consumer
  keeps its incomplete offsets, the other way round.
* A later run, with any filters, starts reading at the mark and skips exactly the listed records.
  A record one run's filters left alone is therefore never lost to a later run, and a record a
  run handled is never handled again by the group.
* The mark and the list are written with ``send_offsets_to_transaction`` in the same Kafka
  transaction as the re-published records, so they cannot disagree, whatever kills the run.

Kafka bounds the metadata (``offset.metadata.max.bytes``, 4096 bytes by default): 1,534 separate
ranges when gaps and runs are shorter than 128 records, 1,023 under 16,384, 767 beyond. A
selection so scattered that the list would outgrow it cannot be tracked:
:meth:`PartitionLedger.mark_within` says so before a record is marked, and the run stops there
rather than lose track (exit code 1). (zlib would fit 2-10 times more ranges, at a cost that
grows with the square of the list: checking the size as each record is marked means compressing
the whole list again; plain varints stay cheap.)
"""

from __future__ import annotations

import base64
import binascii
import bisect
from collections.abc import Iterable, Iterator
from typing import Final

VERSION_PREFIX: Final = "v1:"
# How much one mark can add to the metadata: a new range is two varints of at most 10 bytes
# (offsets are 63-bit), 20 bytes, which base64 turns into at most 28 characters (a merge or an
# extension adds less). The exact size is computed whenever the bound gets near the budget.
_MAX_GROWTH_PER_MARK: Final = 28


class LedgerError(ValueError):
    """A commit's metadata that segstream-dlq did not write (another tool used the group?)."""


Range = tuple[int, int]  # [start, end)


class PartitionLedger:
    """Handled offsets of one partition: everything below :attr:`low`, plus :attr:`ranges`.

    Invariant: ranges are sorted, disjoint, non-adjacent, and all start above ``low`` (``low``
    itself is never handled: it would have moved).
    """

    def __init__(self, low: int = 0, ranges: Iterable[Range] = ()) -> None:
        self.low = low
        self._ranges: list[Range] = []
        self._size_bound = 0
        for start, end in ranges:
            self.mark_range(start, end)
        self._size_bound = len(self.commit()[1].encode())

    @classmethod
    def from_commit(cls, offset: int | None, metadata: str | None) -> PartitionLedger:
        """From a committed offset (``None``: nothing committed yet) and its metadata."""
        low = offset if offset is not None and offset >= 0 else 0
        return cls(low, decode_ranges(low, metadata or ""))

    # -- queries ------------------------------------------------------------------------------

    @property
    def ranges(self) -> list[Range]:
        return list(self._ranges)

    def is_done(self, offset: int) -> bool:
        if offset < self.low:
            return True
        index = bisect.bisect_right(self._ranges, (offset, _INFINITY)) - 1
        return index >= 0 and self._ranges[index][0] <= offset < self._ranges[index][1]

    def commit(self) -> tuple[int, str]:
        """The offset and metadata to commit."""
        return self.low, encode_ranges(self.low, self._ranges)

    def mark_within(self, offset: int, budget: int) -> bool:
        """Mark ``offset`` handled unless the commit's metadata would then outgrow ``budget``
        bytes; False (and nothing marked) in that case.

        Encoding the whole list for every record would make a long run quadratic, so the exact
        size is computed only when a cheap upper bound (the last exact size plus
        :data:`_MAX_GROWTH_PER_MARK` per mark since) could exceed the budget.
        """
        if self._size_bound + _MAX_GROWTH_PER_MARK <= budget:
            self.mark(offset)  # raises the bound by one mark's growth
            return True
        saved = (self.low, list(self._ranges))
        self.mark(offset)
        size = len(self.commit()[1].encode())
        if size > budget:
            self.low, self._ranges = saved
            return False
        self._size_bound = size
        return True

    # -- changes -------------------------------------------------------------------------------

    def mark(self, offset: int) -> None:
        self.mark_range(offset, offset + 1)

    def mark_range(self, start: int, end: int) -> None:
        """Mark ``[start, end)`` handled (or absent: a gap in the log)."""
        start = max(start, self.low)
        if start >= end:
            return
        index = bisect.bisect_left(self._ranges, (start, start))
        # Merge with a range that ends at or after ``start`` on the left ...
        if index > 0 and self._ranges[index - 1][1] >= start:
            index -= 1
            start = self._ranges[index][0]
            end = max(end, self._ranges[index][1])
        # ... and with every range that starts at or before ``end`` on the right.
        last = index
        while last < len(self._ranges) and self._ranges[last][0] <= end:
            end = max(end, self._ranges[last][1])
            last += 1
        self._ranges[index:last] = [(start, end)]
        self._size_bound += _MAX_GROWTH_PER_MARK
        if self._ranges[0][0] <= self.low:
            self.low = max(self.low, self._ranges.pop(0)[1])

    def advance_to(self, offset: int) -> None:
        """Everything before ``offset`` is gone from the log (retention): count it as handled."""
        self.mark_range(self.low, offset)


_INFINITY: Final = 2**63


def encode_ranges(low: int, ranges: Iterable[Range]) -> str:
    """``""`` for no ranges, else ``v1:`` + base64(varint gap, varint length, ...): each gap
    from the previous range's end (the first from the low-water mark), then the length."""
    body = bytearray()
    previous_end = low
    for start, end in ranges:
        _put_varint(body, start - previous_end)
        _put_varint(body, end - start)
        previous_end = end
    if not body:
        return ""
    return VERSION_PREFIX + base64.b64encode(bytes(body)).decode("ascii")


def decode_ranges(low: int, metadata: str) -> list[Range]:
    if not metadata:
        return []
    if not metadata.startswith(VERSION_PREFIX):
        raise LedgerError(f"commit metadata {metadata[:20]!r}... was not written by segstream-dlq")
    try:
        body = base64.b64decode(metadata[len(VERSION_PREFIX) :], validate=True)
    except binascii.Error as exc:
        raise LedgerError(f"commit metadata is corrupt: {exc}") from exc
    numbers = list(_varints(body))
    if len(numbers) % 2:
        raise LedgerError("commit metadata is corrupt: odd number of values")
    ranges = []
    previous_end = low
    for gap, length in zip(numbers[::2], numbers[1::2], strict=True):
        start = previous_end + gap
        ranges.append((start, start + length))
        previous_end = start + length
    return ranges


def _put_varint(out: bytearray, value: int) -> None:
    if value < 0:
        raise ValueError("ranges must be sorted and above the low-water mark")
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return


def _varints(data: bytes) -> Iterator[int]:
    value = shift = 0
    for byte in data:
        value |= (byte & 0x7F) << shift
        if byte & 0x80:
            shift += 7
            continue
        yield value
        value = shift = 0
    if shift:
        raise LedgerError("commit metadata is corrupt: truncated number")
