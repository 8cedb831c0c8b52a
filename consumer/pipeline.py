"""What happens to one record: decode, dedupe, fold into the customer's state, write, remember.

Routing only; each step is its own module:

1. decode (:mod:`schemas.codec`): bad bytes or values are dead-lettered at once; a record whose
   writer schema is unknown holds its partition (:mod:`consumer.processing.holds`) until it can be
   read;
2. dedupe (:mod:`consumer.dedupe`): an event id finished within the TTL is skipped;
3. fold (:mod:`consumer.state`): only the attributes that move the customer forward are written;
   an event with none is skipped as ``stale``, ``duplicate`` or ``expired``;
4. write (:mod:`consumer.writer`): breaker, rate limit, retries, dead letters;
5. remember: the new versions go to the state changelog before the record counts as finished.

A record ends in exactly one way: written, skipped (and counted), or dead-lettered.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from confluent_kafka import Message

from consumer.clients import KafkaClients
from consumer.deadletter import Failure, Stage
from consumer.dedupe import DedupeIndex, DedupeRebuildError, rebuild_partition
from consumer.errors import FATAL_ERRORS, EventTimeError, StateError
from consumer.metrics import ConsumerMetrics
from consumer.processing.holds import PartitionHolds
from consumer.sink import CustomerUpdate
from consumer.state import CustomerStates, Decision
from consumer.state.versions import epoch_ms, from_epoch_ms
from consumer.writer import SinkWriter
from schemas.codec import EventCodec
from schemas.errors import EventDecodeError, EventValidationError, WriterSchemaUnavailableError
from schemas.model import MAX_CLOCK_SKEW_S, InteractionCompleted
from schemas.topics import HEADER_EVENT_ID, HEADER_REPLAY_COUNT

# A held record tries to read itself again after 1 s, doubling to 30 s: a registry that was
# briefly away is noticed at once, and a record no reader here will ever know costs one cheap
# attempt per 30 s until its partition moves to an instance that does.
_HOLD_FIRST_RETRY_S: Final = 1.0
_HOLD_MAX_RETRY_S: Final = 30.0
# State restore that fails (the broker is away) is retried on the same schedule; the partition's
# records wait, because handling them without their customers' state could write older over newer.
_RESTORE_FIRST_RETRY_S: Final = 1.0
_RESTORE_MAX_RETRY_S: Final = 30.0

_log = logging.getLogger(__name__)


def header_value(message: Message, name: str) -> bytes | None:
    raw = message.headers() or []
    items = raw.items() if isinstance(raw, dict) else raw
    for key, value in items:
        if key == name:
            return value.encode() if isinstance(value, str) else value
    return None


def record_context(message: Message) -> dict[str, Any]:
    """What every log line about a record carries. Never the key: it is a customer id."""
    event_id = header_value(message, HEADER_EVENT_ID)
    return {
        "topic": message.topic(),
        "partition": message.partition(),
        "offset": message.offset(),
        "event_id": event_id.decode(errors="replace") if event_id is not None else None,
    }


def record_timestamp_ms(message: Message) -> int | None:
    kind, timestamp = message.timestamp()
    return timestamp if kind and timestamp > 0 else None


def replay_count(message: Message) -> int | None:
    """How often the dead-letter tool replayed this record; None when it is an original."""
    raw = header_value(message, HEADER_REPLAY_COUNT)
    if raw is None:
        return None
    try:
        return max(int(raw.decode("ascii")), 1)
    except (UnicodeDecodeError, ValueError):
        return 1


def idempotency_base(event: InteractionCompleted, replays: int | None) -> str:
    """The event id, and for the n-th replay ``{event_id}~r{n}``: a CRM that stored the error
    answer of the first delivery under its key must see the replay as a new request."""
    return event.event_id if replays is None else f"{event.event_id}~r{replays}"


@dataclass(frozen=True)
class _Planned:
    update: CustomerUpdate
    decision: Decision
    stream_time_ms: int


class RecordProcessor:
    """The :class:`consumer.processing.engine.RecordHandler` of the consumer."""

    def __init__(
        self,
        *,
        codec: EventCodec,
        writer: SinkWriter,
        states: CustomerStates,
        dedupe: DedupeIndex,
        metrics: ConsumerMetrics,
        clients: KafkaClients,
        dedupe_ttl_s: float,
        holds: PartitionHolds | None = None,
        hold_unknown_schemas: bool = True,
    ) -> None:
        self._codec = codec
        self._writer = writer
        self._states = states
        self._dedupe = dedupe
        self._metrics = metrics
        self._clients = clients
        self._dedupe_ttl_s = dedupe_ttl_s
        self.holds = holds or PartitionHolds()
        self._hold_unknown_schemas = hold_unknown_schemas

    # RecordHandler ---------------------------------------------------------------------------

    async def handle(self, message: Message) -> None:
        """Finish the record: written, skipped (counted) or dead-lettered.

        Raises only the fatal conditions (:data:`consumer.errors.FATAL_ERRORS`: the dead-letter
        topic or the state changelog not acknowledging, a configuration error) and cancellation.
        Any other exception is this record's problem: it is dead-lettered with the stage it
        happened in, and the partition goes on.
        """
        context = record_context(message)
        stage: Stage = "decode"
        try:
            event = await self._read(message, context)
            if event is None:
                return
            context["event_id"] = event.event_id
            stage = "validate"
            planned = await self._decide(message, event, context)
            if planned is None:
                return
            stage = "sink"
            await self._write(message, event, planned, context)
        except FATAL_ERRORS:
            raise
        except Exception as exc:
            _log.exception(
                "unexpected error while handling a record; dead-lettering it",
                extra={**context, "stage": stage, "error_class": type(exc).__name__},
            )
            now = datetime.now(UTC)
            await self._writer.dead_letter(message, Failure(stage, exc, 1, now, now), context)

    async def prepare_partition(self, topic: str, partition: int, committed: int | None) -> None:
        """Restore the partition's customer state and rebuild its recent event ids."""
        await asyncio.gather(
            self._restore_state(partition), self._rebuild_dedupe(topic, partition, committed)
        )

    def assignment_changed(self, assigned: int, total: int) -> None:
        self._writer.limiter.set_share(assigned, total)
        self._metrics.assigned.set(assigned)
        self._metrics.limiter_rate.set(self._writer.limiter.current_rate_per_s)

    def is_writing(self, topic: str, partition: int, offset: int) -> bool:
        return self._writer.is_writing(topic, partition, offset)

    def partition_dropped(self, topic: str, partition: int) -> None:
        self._dedupe.drop_partition(topic, partition)
        self._states.drop(partition)
        self._metrics.forget_partition(topic, partition)
        self._metrics.state_customers.set(self._states.customers())

    # steps ----------------------------------------------------------------------------------

    async def _decide(
        self, message: Message, event: InteractionCompleted, context: dict[str, Any]
    ) -> _Planned | None:
        """What to write for the event, or None once it was skipped or dead-lettered."""
        topic, partition = message.topic() or "", message.partition() or 0
        timestamp_ms = record_timestamp_ms(message)
        if timestamp_ms is not None and _from_the_future(event, timestamp_ms):
            now = datetime.now(UTC)
            error = EventTimeError(
                f"completed_at {event.completed_at.isoformat()} is more than "
                f"{MAX_CLOCK_SKEW_S} s after the record's timestamp"
            )
            await self._writer.dead_letter(
                message, Failure("validate", error, 1, now, now), context
            )
            return None
        stream_time_ms = timestamp_ms if timestamp_ms is not None else int(time.time() * 1000)
        replays = replay_count(message)
        if replays is None and self._dedupe.is_duplicate(
            topic, partition, event.event_id, stream_time_ms
        ):
            self._metrics.dedupe_hits.inc()
            self._finish("duplicate", context)
            return None
        decision = self._states.decide(partition, event, stream_time_ms)
        if decision.outcome != "forward":
            self._dedupe.remember(topic, partition, event.event_id, stream_time_ms)
            self._finish(decision.outcome, context)
            return None
        update = customer_update(event, decision, idempotency_base(event, replays))
        return _Planned(update, decision, stream_time_ms)

    async def _write(
        self,
        message: Message,
        event: InteractionCompleted,
        planned: _Planned,
        context: dict[str, Any],
    ) -> None:
        topic, partition = message.topic() or "", message.partition() or 0
        written = await self._writer.write(message, planned.update, context)
        if written:
            with self._writer.finishing(message):
                await self._states.applied(partition, event.customer_id, planned.decision.versions)
            age = (datetime.now(UTC) - event.completed_at).total_seconds()
            self._metrics.event_age.observe(max(age, 0.0))
            # DEBUG: at thousands of events per second a line per success costs more CPU than
            # the rest of the pipeline and tells nothing the metrics do not; failures, dead
            # letters and state changes are logged at INFO and above.
            self._finish("written", context, attributes=sorted(planned.update.attributes))
        self._dedupe.remember(topic, partition, event.event_id, planned.stream_time_ms)

    async def _read(self, message: Message, context: dict[str, Any]) -> InteractionCompleted | None:
        """The event; None once the record is dead-lettered. Waits while the schema is unknown."""
        where = (message.topic() or "", message.partition() or 0)
        holder = message.offset()
        delay = _HOLD_FIRST_RETRY_S
        try:
            while True:
                try:
                    return self._codec.decode(message.value() or b"")
                except WriterSchemaUnavailableError as exc:
                    if not self._hold_unknown_schemas:
                        now = datetime.now(UTC)
                        failure = Failure("decode", exc, 1, now, now)
                        await self._writer.dead_letter(message, failure, context)
                        return None
                    if self.holds.hold(where, holder, str(exc)):
                        self._metrics.held_partitions.set(len(self.holds))
                    _log.warning(
                        "record unreadable for now; partition held",
                        extra={**context, "reason": str(exc), "retry_in_s": delay},
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, _HOLD_MAX_RETRY_S)
                except (EventDecodeError, EventValidationError) as exc:
                    stage: Stage = "decode" if isinstance(exc, EventDecodeError) else "validate"
                    now = datetime.now(UTC)
                    await self._writer.dead_letter(
                        message, Failure(stage, exc, 1, now, now), context
                    )
                    return None
        finally:
            if self.holds.release(where, holder):
                self._metrics.held_partitions.set(len(self.holds))
                _log.info("partition no longer held", extra=context)

    def _finish(self, outcome: str, context: dict[str, Any], **extra: Any) -> None:
        self._metrics.records.labels(outcome).inc()
        _log.debug("record %s", outcome, extra={**context, **extra})

    async def _restore_state(self, partition: int) -> None:
        delay = _RESTORE_FIRST_RETRY_S
        while True:
            try:
                started = time.monotonic()
                await self._states.restore(partition)
            except StateError as exc:
                _log.error(
                    "customer state restore failed; the partition waits",
                    extra={"partition": partition, "reason": str(exc), "retry_in_s": delay},
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RESTORE_MAX_RETRY_S)
            else:
                self._metrics.state_restore_seconds.observe(time.monotonic() - started)
                self._metrics.state_customers.set(self._states.customers())
                return

    async def _rebuild_dedupe(self, topic: str, partition: int, committed: int | None) -> None:
        """Rebuild the partition's recent event ids from the partition itself (dedupe across
        restarts and rebalances without an external store)."""
        if committed is None or committed <= 0:
            return
        started = time.monotonic()
        try:
            seen = await asyncio.to_thread(
                rebuild_partition,
                self._clients,
                topic,
                partition,
                until_offset=committed,
                ttl_s=self._dedupe_ttl_s,
                codec=self._codec,
            )
        except DedupeRebuildError as exc:
            # Part of the history is better than none; the customer state and the CRM's
            # Idempotency-Key catch the rest.
            _log.warning(
                "dedupe history incomplete",
                extra={
                    "topic": topic,
                    "partition": partition,
                    "reason": str(exc),
                    "event_ids": len(exc.partial),
                },
            )
            seen = exc.partial
        self._dedupe.load_partition(topic, partition, seen)
        _log.info(
            "dedupe history rebuilt",
            extra={
                "topic": topic,
                "partition": partition,
                "event_ids": len(seen),
                "until_offset": committed,
                "seconds": round(time.monotonic() - started, 3),
            },
        )


def _from_the_future(event: InteractionCompleted, record_timestamp_ms: int) -> bool:
    return epoch_ms(event.completed_at) > record_timestamp_ms + MAX_CLOCK_SKEW_S * 1000


def customer_update(event: InteractionCompleted, decision: Decision, key: str) -> CustomerUpdate:
    """What the sink is asked to write for ``event`` once ``decision`` says it moves forward."""
    return CustomerUpdate(
        customer_id=event.customer_id,
        attributes=decision.forward,
        last_updated=from_epoch_ms(decision.last_updated_ms),
        idempotency_key=key,
        event_id=event.event_id,
    )
