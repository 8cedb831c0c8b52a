"""Moving selected dead letters out, each exactly once: the loop ``replay`` and ``park`` share.

For every record in the run's window (see :mod:`consumer.dlq.reader`): skip it if the replay
group handled it before (:mod:`consumer.dlq.ledger`) or the filters do not select it; else ask
the command what to do (:class:`Decision`), write the output in the current transaction, and
mark it handled. Every :data:`consumer.dlq.publisher.MAX_RECORDS` records or second, the
transaction commits with the group's new offsets. A dry run decides and counts the same way and
writes nothing.
"""

from __future__ import annotations

import copy
import enum
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from confluent_kafka import Message, TopicPartition

from consumer.dlq.ledger import PartitionLedger
from consumer.dlq.publisher import TransactionalPublisher
from consumer.dlq.reader import DeadLetterReader, PartitionEnd, Window
from consumer.dlq.records import DeadLetter, Headers
from consumer.dlq.selection import Selection


class Action(enum.StrEnum):
    REPLAYED = "replayed"
    PARKED = "parked"  # by the operator (``park``)
    PARKED_MAX_REPLAYS = "parked_max_replays"  # by the loop guard
    DUPLICATE = "duplicate"  # a second dead letter of a record handled earlier in this run
    UNREPLAYABLE = "unreplayable"  # no (allowed) original topic, or no value kept: in place


HANDLED = (Action.REPLAYED, Action.PARKED, Action.PARKED_MAX_REPLAYS)


class StopReason(enum.StrEnum):
    MAX = "max"  # --max reached
    SIGNAL = "signal"  # Ctrl-C / SIGTERM
    LEDGER_FULL = "ledger-full"  # the selection is too scattered to track further


@dataclass(frozen=True)
class Output:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers


@dataclass(frozen=True)
class Decision:
    action: Action
    output: Output | None = None


class Chooser(Protocol):
    """What the command does with one selected record."""

    def __call__(self, record: DeadLetter, run_id: str, now: datetime) -> Decision: ...


@dataclass
class Tally:
    """What a run saw and did; the audit record and the summary are made of it."""

    scanned: int = 0  # records read in the windows
    already_handled: int = 0  # handled by an earlier run of the group
    not_selected: int = 0
    outcomes: Counter[Action] = field(default_factory=Counter)
    reasons: Counter[tuple[str, str]] = field(default_factory=Counter)  # (stage, error class)
    superseded: int | None = None  # dry run: selected records newer state would overrule
    stopped: StopReason | None = None
    stopped_at: str | None = None  # dead-letter position where a ledger-full run stopped

    @property
    def selected(self) -> int:
        return sum(self.outcomes.values())

    @property
    def handled(self) -> int:
        return sum(self.outcomes[a] for a in HANDLED)

    def counts(self) -> dict[str, Any]:
        counts: dict[str, Any] = {
            "scanned": self.scanned,
            "already_handled": self.already_handled,
            "not_selected": self.not_selected,
            "selected": self.selected,
            **{action.value: self.outcomes[action] for action in Action},
        }
        if self.superseded is not None:
            counts["superseded"] = self.superseded
        return counts


@dataclass(frozen=True)
class Plan:
    selection: Selection
    choose: Chooser
    dry_run: bool
    run_id: str
    max_records: int | None = None
    rate_per_s: float = 0.0
    metadata_budget: int = 4096
    # Dry run only: does the customer's state already hold newer values for everything this
    # record carries? (None: unknown, not counted.)
    superseded: Callable[[DeadLetter], bool] | None = None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now().astimezone())


class Progress(Protocol):
    def advance(self, offsets: int, tally: Tally) -> None: ...


class Pacer:
    """At most ``rate_per_s`` calls of :meth:`wait` per second, evenly spaced (no burst)."""

    def __init__(self, rate_per_s: float) -> None:
        self._interval = 1.0 / rate_per_s if rate_per_s > 0 else 0.0
        self._next = time.monotonic()

    def wait(self, stop: threading.Event) -> None:
        if self._interval == 0:
            return
        delay = self._next - time.monotonic()
        if delay > 0:
            stop.wait(delay)
        self._next = max(self._next, time.monotonic() - self._interval) + self._interval


class Transfer:
    """One run of a plan over the windows, counting into ``tally``. ``publisher`` is None
    exactly for a dry run."""

    def __init__(
        self,
        reader: DeadLetterReader,
        windows: dict[int, Window],
        ledgers: dict[int, PartitionLedger],
        plan: Plan,
        *,
        publisher: TransactionalPublisher | None,
        stop: threading.Event,
        tally: Tally,
    ) -> None:
        if (publisher is None) != plan.dry_run:
            raise ValueError("a dry run has no publisher, a real run needs one")
        self._reader = reader
        self._windows = windows
        self._ledgers = ledgers
        self._plan = plan
        self._publisher = publisher
        self._stop = stop
        self._tally = tally
        tally.superseded = 0 if plan.superseded is not None else None
        self._committed_tally = copy.deepcopy(tally)  # what the last commit covered
        self._origins: set[tuple[str, int, int]] = set()
        self._pacer = Pacer(plan.rate_per_s)
        self._committed = {p: ledgers[p].commit() for p in windows}

    def run(self, progress: Progress) -> None:
        """When a real run fails, the tally is set back to what its last commit covered: what
        came after was aborted."""
        try:
            self._run(progress)
        except BaseException:
            if self._publisher is not None:
                vars(self._tally).update(vars(copy.deepcopy(self._committed_tally)))
            raise

    def _run(self, progress: Progress) -> None:
        tally = self._tally
        expected = {p: w.start for p, w in self._windows.items()}
        for item in self._reader.read(self._windows, self._stop):
            if isinstance(item, PartitionEnd):
                # Offsets in the window that held no record (transaction markers, compaction).
                self._ledgers[item.partition].mark_range(expected[item.partition], item.offset)
                progress.advance(item.offset - expected[item.partition], tally)
                expected[item.partition] = item.offset
                continue
            partition, offset = item.partition() or 0, item.offset() or 0
            self._ledgers[partition].mark_range(expected[partition], offset)
            progress.advance(offset + 1 - expected[partition], tally)
            expected[partition] = offset + 1
            tally.scanned += 1
            tally.stopped = self._handle(item)
            if tally.stopped is not None:
                break
            if self._publisher is not None and self._publisher.due:
                self._commit()
            if self._stop.is_set():
                break
        if tally.stopped is None and self._stop.is_set():
            tally.stopped = StopReason.SIGNAL
        self._commit()

    def _commit(self) -> None:
        current = {p: self._ledgers[p].commit() for p in self._windows}
        publisher = self._publisher
        if publisher is None or (current == self._committed and not publisher.pending):
            return
        topic = self._reader.topic
        offsets = [TopicPartition(topic, p, *current[p]) for p in sorted(current)]
        publisher.commit(offsets, self._reader.consumer.consumer_group_metadata())
        self._committed = current
        self._committed_tally = copy.deepcopy(self._tally)

    def _handle(self, message: Message) -> StopReason | None:
        plan, tally = self._plan, self._tally
        offset = message.offset() or 0
        ledger = self._ledgers[message.partition() or 0]
        if ledger.is_done(offset):
            tally.already_handled += 1
            return None
        record = DeadLetter.from_message(message)
        if not plan.selection.matches(record):
            tally.not_selected += 1
            return None
        if plan.max_records is not None and tally.handled >= plan.max_records:
            return StopReason.MAX
        decision = self._deduplicated(plan.choose(record, plan.run_id, plan.clock()), record)
        if decision.action is Action.UNREPLAYABLE:  # counted, left in place (not marked)
            tally.outcomes[decision.action] += 1
            tally.reasons[(record.stage, record.error_class)] += 1
            return None
        # A dry run marks too (in memory only), so it plans what the real run would do.
        if not ledger.mark_within(offset, plan.metadata_budget):
            tally.stopped_at = record.position()
            return StopReason.LEDGER_FULL
        tally.outcomes[decision.action] += 1
        tally.reasons[(record.stage, record.error_class)] += 1
        if plan.superseded is not None and decision.action is Action.REPLAYED:
            tally.superseded = (tally.superseded or 0) + int(plan.superseded(record))
        if self._publisher is not None and decision.output is not None:
            self._pacer.wait(self._stop)
            output = decision.output
            self._publisher.produce(output.topic, output.key, output.value, output.headers)
        return None

    def _deduplicated(self, decision: Decision, record: DeadLetter) -> Decision:
        """The consumer writes dead letters at least once: a second dead letter of the same
        failed record (same origin) is handled without being replayed again."""
        if decision.action is not Action.REPLAYED or record.origin is None:
            return decision
        origin = (record.origin.topic, record.origin.partition, record.origin.offset)
        if origin in self._origins:
            return Decision(Action.DUPLICATE)
        self._origins.add(origin)
        return decision
