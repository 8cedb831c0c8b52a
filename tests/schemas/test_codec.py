"""The codec as producers and consumers use it: round trips, evolution, and bytes it must refuse."""

from __future__ import annotations

import copy
import struct
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas import (
    EventCodec,
    EventDecodeError,
    EventValidationError,
    InteractionCompleted,
    fingerprint,
    interaction_completed_schema,
)
from schemas.codec import SINGLE_OBJECT_MAGIC, SingleObjectCodec
from schemas.model import Channel
from support.identifiers import identifiers, references

TOPIC = "interactions.completed.v1"
text = st.text(min_size=1, max_size=40)
instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
).map(lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000))

events = st.builds(
    InteractionCompleted,
    event_id=identifiers(max_size=40),
    customer_id=identifiers(max_size=40),
    contact_id=identifiers(max_size=40),
    channel=st.sampled_from(Channel),
    started_at=instants,
    completed_at=instants,
    interaction_summary=st.none() | st.text(max_size=200),
    sentiment_score=st.none() | st.floats(min_value=-1.0, max_value=1.0),
    tags=st.lists(st.text(min_size=1, max_size=64), max_size=32),
    caller_id=st.none() | st.from_regex(r"\+[0-9]{8,15}", fullmatch=True),
    queue_id=st.none() | references(max_size=40),
    agent_id=st.none() | references(max_size=40),
    attributes=st.dictionaries(text, st.text(max_size=50), max_size=5),
)


def example(**overrides: Any) -> InteractionCompleted:
    fields: dict[str, Any] = {
        "event_id": "7d0c-2026-11-28T10:15:00Z",
        "customer_id": "C-1001",
        "contact_id": "7d0c",
        "channel": "voice",
        "started_at": datetime(2026, 11, 28, 10, 15, tzinfo=UTC),
        "completed_at": datetime(2026, 11, 28, 10, 21, tzinfo=UTC),
        "tags": ["churn_risk"],
        "sentiment_score": 0.4,
    }
    fields.update(overrides)
    return InteractionCompleted(**fields)


@given(events)
def test_every_valid_event_survives_a_round_trip(event: InteractionCompleted) -> None:
    codec = EventCodec(TOPIC)
    assert codec.decode(codec.encode(event)) == event


def test_single_object_framing_carries_the_schema_fingerprint() -> None:
    data = EventCodec(TOPIC).encode(example())
    assert data[:2] == SINGLE_OBJECT_MAGIC
    assert data[2:10] == fingerprint(interaction_completed_schema())


def test_fingerprint_matches_the_avro_specification_vector() -> None:
    # The Avro spec's CRC-64-AVRO of the primitive schema "int" is 0x7275d51a3f395c8f;
    # single-object encoding writes it little-endian.
    assert fingerprint("int") == struct.pack("<Q", 0x7275D51A3F395C8F)  # type: ignore[arg-type]


def v2_schema() -> dict[str, Any]:
    schema = copy.deepcopy(interaction_completed_schema())
    schema["fields"].append({"name": "language", "type": ["null", "string"], "default": None})
    return schema


def test_a_v2_reader_reads_v1_records_with_the_new_field_defaulted() -> None:
    v1_bytes = EventCodec(TOPIC).encode(example())
    reader = EventCodec(TOPIC, reader_schema=v2_schema())
    record = reader.decode_record(v1_bytes)
    assert record["language"] is None
    assert record["customer_id"] == "C-1001"
    assert record["tags"] == ["churn_risk"]


def test_a_v1_reader_reads_v2_records_when_it_knows_the_writer_schema() -> None:
    writer = SingleObjectCodec(writer_schema=v2_schema())
    record = example().to_avro() | {"language": "de"}
    v2_bytes = writer.encode(record)
    reader = EventCodec(TOPIC, known_writer_schemas=[v2_schema()])
    assert reader.decode(v2_bytes) == example()


def test_a_record_written_with_an_unknown_schema_is_refused_by_name() -> None:
    v2_bytes = SingleObjectCodec(writer_schema=v2_schema()).encode(example().to_avro())
    with pytest.raises(EventDecodeError, match="unknown writer schema fingerprint"):
        EventCodec(TOPIC).decode(v2_bytes)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "unknown framing"),
        (b"not avro at all", "unknown framing"),
        (b'{"customerId": "C-1"}', "unknown framing"),
        (SINGLE_OBJECT_MAGIC + b"\x00" * 3, "not Avro single-object"),
        (
            SINGLE_OBJECT_MAGIC + fingerprint(interaction_completed_schema()) + b"\xff" * 7,
            "corrupt",
        ),
        (b"\x00\x00\x00\x00\x01garbage", "no schema registry"),
    ],
)
def test_garbage_bytes_raise_the_packages_own_error(data: bytes, reason: str) -> None:
    with pytest.raises(EventDecodeError, match=reason):
        EventCodec(TOPIC).decode(data)


@given(st.binary(max_size=200))
def test_random_bytes_never_escape_as_a_foreign_exception(data: bytes) -> None:
    codec = EventCodec(TOPIC)
    framed = SINGLE_OBJECT_MAGIC + fingerprint(interaction_completed_schema()) + data
    try:
        event = codec.decode(framed)
    except (EventDecodeError, EventValidationError):
        return
    assert codec.decode(codec.encode(event)) == event


def test_truncated_record_is_a_decode_error() -> None:
    data = EventCodec(TOPIC).encode(example())
    with pytest.raises(EventDecodeError):
        EventCodec(TOPIC).decode(data[:-3])


def test_values_the_model_forbids_are_a_validation_error_not_a_decode_error() -> None:
    record = example().to_avro() | {"sentiment_score": 7.5, "customer_id": " "}
    data = SingleObjectCodec().encode(record)
    with pytest.raises(EventValidationError, match="sentiment_score"):
        EventCodec(TOPIC).decode(data)


def test_confluent_wire_format_through_the_schema_registry_client() -> None:
    # "mock://" is confluent-kafka's own in-process registry: the framing and the serde are the
    # library's real code paths; only the registry's storage is in memory.
    registry = {"url": "mock://segstream-test"}
    codec = EventCodec(TOPIC, registry)
    data = codec.encode(example())
    assert data[0] == 0
    schema_id = struct.unpack(">I", data[1:5])[0]
    assert schema_id >= 1
    assert codec.decode(data) == example()
    # A decoder configured with the registry still reads single-object records.
    assert codec.decode(EventCodec(TOPIC).encode(example())) == example()


def test_timestamps_keep_millisecond_precision_in_utc() -> None:
    local = datetime(2026, 11, 28, 11, 15, 0, 123456, tzinfo=UTC) + timedelta(0)
    event = example(started_at=local.isoformat())
    assert event.started_at.microsecond == 123000
    codec = EventCodec(TOPIC)
    assert codec.decode(codec.encode(event)).started_at == event.started_at
