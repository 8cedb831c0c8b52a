"""A record ends written, skipped (counted) or dead-lettered, whatever goes wrong while handling
it; only the documented fatal conditions leave ``handle``. The real RecordProcessor, SinkWriter,
state and dedupe, with a scripted sink on the fake clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from consumer.errors import DeadLetterError, EventTimeError, StateError
from sandbox.records import make_event
from schemas.model import MAX_CLOCK_SKEW_S, InteractionCompleted
from support.clock import FakeTime
from support.pipeline import record
from support.scripted import OK, ProcessorUnderTest, processor_under_test, server_error

ARRIVAL_MS = int(datetime(2026, 11, 29, tzinfo=UTC).timestamp() * 1000)


def outcome(p: ProcessorUnderTest, name: str) -> float:
    return p.writer.counter("segstream_consumer_records_total", outcome=name)


async def handle(p: ProcessorUnderTest, item: InteractionCompleted | bytes) -> None:
    await p.writer.clock.run(p.processor.handle(record(item, timestamp_ms=ARRIVAL_MS)))


async def test_an_event_is_written_and_its_state_change_recorded() -> None:
    p = processor_under_test(FakeTime())
    event = make_event("C-1", 1)

    await handle(p, event)

    [call] = p.writer.sink.calls
    assert (call.customer_id, call.event_id, call.outcome) == ("C-1", event.event_id, "ok")
    assert [key for key, _ in p.changelog.logs[0]] == [b"C-1"]
    assert outcome(p, "written") == 1


async def test_the_same_event_again_is_skipped_and_counted() -> None:
    p = processor_under_test(FakeTime())
    event = make_event("C-1", 1)

    await handle(p, event)
    await handle(p, event)

    assert len(p.writer.sink.calls) == 1
    assert outcome(p, "duplicate") == 1


async def test_an_older_event_after_a_newer_one_is_skipped_as_stale() -> None:
    p = processor_under_test(FakeTime())

    await handle(p, make_event("C-1", 2))
    await handle(p, make_event("C-1", 1))

    assert [c.event_id for c in p.writer.sink.calls] == [make_event("C-1", 2).event_id]
    assert outcome(p, "stale") == 1


async def test_a_transient_failure_is_retried_and_written() -> None:
    p = processor_under_test(FakeTime())
    p.writer.sink.script("C-1", server_error(503), server_error(502), OK)

    await handle(p, make_event("C-1", 1))

    assert [c.outcome for c in p.writer.sink.calls][-1] == "ok"
    assert outcome(p, "written") == 1
    assert p.writer.dead_letters.letters == []


def completed_after_arrival(customer_id: str, seconds: float) -> InteractionCompleted:
    completed = datetime.fromtimestamp(ARRIVAL_MS / 1000, UTC) + timedelta(seconds=seconds)
    return make_event(customer_id, 1).model_copy(
        update={"started_at": completed - timedelta(minutes=3), "completed_at": completed}
    )


async def test_an_event_completed_too_far_after_its_record_is_dead_lettered_not_applied() -> None:
    """Newest wins by completion time: a clock far ahead would win every comparison for as long
    as it is ahead, so past the allowed skew the event is not believed (README, "Dates in the
    future")."""
    p = processor_under_test(FakeTime())

    await handle(p, completed_after_arrival("C-future", MAX_CLOCK_SKEW_S + 1))
    await handle(p, completed_after_arrival("C-skewed", MAX_CLOCK_SKEW_S - 1))

    [(_, failure)] = p.writer.dead_letters.letters
    assert failure.stage == "validate"
    assert isinstance(failure.error, EventTimeError)
    assert [c.customer_id for c in p.writer.sink.calls] == ["C-skewed"]
    assert [key for log in p.changelog.logs.values() for key, _ in log] == [b"C-skewed"]
    assert (outcome(p, "dead_lettered"), outcome(p, "written")) == (1, 1)


async def test_undecodable_bytes_are_dead_lettered_at_the_decode_stage() -> None:
    p = processor_under_test(FakeTime())

    await handle(p, b"\x7b\x01not-avro")

    [(_, failure)] = p.writer.dead_letters.letters
    assert failure.stage == "decode"
    assert outcome(p, "dead_lettered") == 1


@pytest.mark.parametrize(
    ("broken", "stage"),
    [
        ("decode", "decode"),
        ("decide", "validate"),
        ("write", "sink"),
        ("applied", "sink"),
    ],
)
async def test_an_unexpected_error_in_any_step_dead_letters_the_record_with_its_stage(
    broken: str, stage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = processor_under_test(FakeTime())

    def fail(*_: object, **__: object) -> None:
        raise OverflowError("date value out of range")

    async def fail_async(*_: object, **__: object) -> None:
        fail()

    target = {
        "decode": (p.processor._codec, "decode", fail),
        "decide": (p.states, "decide", fail),
        "write": (p.writer.sink, "write", fail_async),
        "applied": (p.states, "applied", fail_async),
    }[broken]
    monkeypatch.setattr(*target)

    await handle(p, make_event("C-1", 1))  # returns: nothing reaches the engine

    [(message, failure)] = p.writer.dead_letters.letters
    assert failure.stage == stage
    assert isinstance(failure.error, OverflowError)
    assert message.key() == b"C-1"
    assert outcome(p, "dead_lettered") == 1
    # The next record of the partition is handled as usual.
    monkeypatch.undo()
    await handle(p, make_event("C-2", 1))
    assert outcome(p, "written") == 1


async def test_a_dead_letter_topic_that_does_not_acknowledge_is_fatal() -> None:
    p = processor_under_test(FakeTime())

    async def refuse(*_: object) -> None:
        raise DeadLetterError("dead-letter topic did not acknowledge: timed out")

    p.writer.dead_letters.send = refuse  # type: ignore[method-assign]

    with pytest.raises(DeadLetterError):
        await handle(p, b"garbage")


async def test_a_state_changelog_that_does_not_acknowledge_is_fatal() -> None:
    p = processor_under_test(FakeTime())

    async def refuse(*_: object) -> None:
        raise StateError("state changelog did not acknowledge: timed out")

    p.changelog.write = refuse  # type: ignore[method-assign]

    with pytest.raises(StateError):
        await handle(p, make_event("C-1", 1))
    assert p.writer.dead_letters.letters == []
