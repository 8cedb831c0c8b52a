"""What a replay writes: the record as it was, its provenance, and the loop guard."""

from __future__ import annotations

from datetime import UTC, datetime

from confluent_kafka import Message

from consumer.dlq.park import ParkChooser
from consumer.dlq.records import DeadLetter
from consumer.dlq.replay import ReplayChooser
from consumer.dlq.transfer import Action

NOW = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)
CONTEXT = [
    ("segstream.dlq.topic", b"interactions.completed.v1"),
    ("segstream.dlq.partition", b"4"),
    ("segstream.dlq.offset", b"1234"),
    ("segstream.dlq.stage", b"sink"),
    ("segstream.dlq.error.class", b"SinkRejectedError"),
]


def dead_letter(headers: list[tuple[str, bytes]], *, offset: int = 9) -> DeadLetter:
    message = Message(
        topic="dlq", partition=2, offset=offset, key=b"C-7", value=b"AVRO", headers=headers
    )
    return DeadLetter.from_message(message)


def test_a_first_replay_goes_to_the_original_topic_with_the_original_record_and_provenance() -> (
    None
):
    record = dead_letter([("event-id", b"e-7"), ("traceparent", b"00-abc-01"), *CONTEXT])
    decision = ReplayChooser("dlq.parked", max_replays=3)(record, "run-1", NOW)
    assert decision.action is Action.REPLAYED
    output = decision.output
    assert output is not None
    assert (output.topic, output.key, output.value) == (
        "interactions.completed.v1",
        b"C-7",
        b"AVRO",
    )
    assert output.headers == [
        ("event-id", b"e-7"),
        ("traceparent", b"00-abc-01"),
        ("segstream.replay.count", b"1"),
        ("segstream.replay.topic", b"interactions.completed.v1"),
        ("segstream.replay.partition", b"4"),
        ("segstream.replay.offset", b"1234"),
        ("segstream.replay.run", b"run-1"),
        ("segstream.replay.time", b"2026-11-29T03:00:00.000+00:00"),
    ]


def test_a_record_replayed_again_gets_its_provenance_replaced_and_the_count_raised() -> None:
    earlier = [
        ("segstream.replay.count", b"1"),
        ("segstream.replay.topic", b"interactions.completed.v1"),
        ("segstream.replay.partition", b"0"),
        ("segstream.replay.offset", b"17"),
        ("segstream.replay.run", b"run-0"),
        ("segstream.replay.time", b"2026-11-28T03:00:00.000+00:00"),
    ]
    record = dead_letter([("event-id", b"e-7"), *earlier, *CONTEXT])
    output = ReplayChooser("dlq.parked", max_replays=3)(record, "run-1", NOW).output
    assert output is not None
    names = [name for name, _ in output.headers]
    assert len(names) == len(set(names))
    headers = dict(output.headers)
    assert headers["segstream.replay.count"] == b"2"
    assert headers["segstream.replay.offset"] == b"1234"  # the record that failed this time
    assert headers["segstream.replay.run"] == b"run-1"
    assert not any(name.startswith("segstream.dlq.") for name in names)


def test_the_loop_guard_parks_a_record_replayed_max_replays_times() -> None:
    chooser = ReplayChooser("dlq.parked", max_replays=3)
    for count, expected in (
        (0, Action.REPLAYED),
        (2, Action.REPLAYED),
        (3, Action.PARKED_MAX_REPLAYS),
    ):
        headers = [*CONTEXT, ("segstream.replay.count", str(count).encode())]
        assert chooser(dead_letter(headers), "run-1", NOW).action is expected
    parked = chooser(dead_letter([*CONTEXT, ("segstream.replay.count", b"3")]), "r", NOW).output
    assert parked is not None
    assert parked.topic == "dlq.parked"
    headers = dict(parked.headers)
    assert headers["segstream.parked.reason"] == b"max-replays"
    assert headers["segstream.dlq.error.class"] == b"SinkRejectedError"  # why it failed stays
    assert (headers["segstream.parked.partition"], headers["segstream.parked.offset"]) == (
        b"2",
        b"9",
    )


def test_a_dead_letter_without_an_original_topic_is_left_in_place() -> None:
    decision = ReplayChooser("dlq.parked", max_replays=3)(dead_letter([]), "run-1", NOW)
    assert decision.action is Action.UNREPLAYABLE
    assert decision.output is None


def test_a_dead_letter_the_consumer_wrote_without_its_value_is_left_in_place() -> None:
    # Replaying it would publish an empty value where the event was: the record is at its
    # origin (the context says where), not here.
    record = dead_letter([*CONTEXT, ("segstream.dlq.value.omitted", b"1048000")])
    assert record.value_omitted == 1048000
    decision = ReplayChooser("dlq.parked", max_replays=3)(record, "run-1", NOW)
    assert decision.action is Action.UNREPLAYABLE
    assert decision.output is None


def test_a_dead_letter_whose_topic_a_replay_may_not_write_to_is_left_in_place() -> None:
    asked: list[str] = []

    def nowhere(topic: str) -> bool:
        asked.append(topic)
        return False

    decision = ReplayChooser("dlq.parked", 3, nowhere)(dead_letter(CONTEXT), "run-1", NOW)
    assert decision.action is Action.UNREPLAYABLE
    assert decision.output is None
    assert asked == ["interactions.completed.v1"]


def test_park_keeps_the_whole_dead_letter_and_says_the_operator_parked_it() -> None:
    record = dead_letter([("event-id", b"e-7"), *CONTEXT, ("segstream.parked.reason", b"old")])
    decision = ParkChooser("dlq.parked")(record, "run-2", NOW)
    assert decision.action is Action.PARKED
    assert decision.output is not None
    headers = decision.output.headers
    assert headers[: 1 + len(CONTEXT)] == [("event-id", b"e-7"), *CONTEXT]
    assert dict(headers)["segstream.parked.reason"] == b"operator"
    assert [n for n, _ in headers].count("segstream.parked.reason") == 1
