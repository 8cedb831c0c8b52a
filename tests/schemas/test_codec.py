"""The codec as producers and consumers use it: round trips, evolution, and bytes it must refuse."""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from hypothesis import given
from hypothesis import strategies as st

from schemas import (
    EventCodec,
    EventDecodeError,
    EventValidationError,
    InteractionCompleted,
    WriterSchemaUnavailableError,
    fingerprint,
    interaction_completed_schema,
)
from schemas.codec import SINGLE_OBJECT_MAGIC, SingleObjectCodec, load_schema_text, schema_versions
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
    tags=st.none() | st.lists(st.text(min_size=1, max_size=64), max_size=32),
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


def v3_schema() -> dict[str, Any]:
    """What a newer producer might write: the current schema plus an optional field."""
    schema = interaction_completed_schema()
    schema["fields"].append({"name": "language", "type": ["null", "string"], "default": None})
    return schema


def v1_bytes(record: dict[str, Any]) -> bytes:
    """Exactly what the v1 bridge wrote: the shipped v1 schema's fingerprint and body."""
    return SingleObjectCodec(writer_schema=interaction_completed_schema(1)).encode(record)


def test_every_schema_version_is_shipped_with_its_own_fingerprint() -> None:
    versions = schema_versions()
    assert [v.number for v in versions] == list(range(1, len(versions) + 1))
    assert len(versions) >= 2
    assert len({v.fingerprint for v in versions}) == len(versions)
    assert interaction_completed_schema() == versions[-1].schema


def test_writers_use_the_current_version() -> None:
    data = EventCodec(TOPIC).encode(example())
    assert data[2:10] == schema_versions()[-1].fingerprint


def test_v1_architect_records_are_read_with_their_tags_carried() -> None:
    record = example().to_avro() | {"tags": ["churn_risk"]}
    assert EventCodec(TOPIC).decode(v1_bytes(record)) == example()
    emptied = example(tags=[]).to_avro()
    assert EventCodec(TOPIC).decode(v1_bytes(emptied)).tags == []  # a flow's [] still clears


def test_v1_platform_records_are_read_as_not_carrying_tags() -> None:
    # The v1 bridge wrote tags [] for the platform's events, which carry no tags at all: the
    # consumer must not read that as "clear the customer's tags".
    platform = example(
        tags=None, sentiment_score=None, attributes={"platform_topic": "acw"}
    ).to_avro() | {"tags": []}
    decoded = EventCodec(TOPIC).decode(v1_bytes(platform))
    assert decoded.tags is None
    assert decoded.attributes["platform_topic"] == "acw"


def test_v2_distinguishes_not_carried_from_cleared() -> None:
    codec = EventCodec(TOPIC)
    assert codec.decode(codec.encode(example(tags=None))).tags is None
    assert codec.decode(codec.encode(example(tags=[]))).tags == []


def test_a_reader_told_of_a_newer_writer_schema_reads_its_records() -> None:
    writer = SingleObjectCodec(writer_schema=v3_schema())
    newer = writer.encode(example().to_avro() | {"language": "de"})
    reader = EventCodec(TOPIC, known_writer_schemas=[v3_schema()])
    assert reader.decode(newer) == example()


def test_a_record_written_with_an_unknown_schema_is_unavailable_not_corrupt() -> None:
    newer = SingleObjectCodec(writer_schema=v3_schema()).encode(example().to_avro())
    with pytest.raises(WriterSchemaUnavailableError, match="unknown writer schema fingerprint"):
        EventCodec(TOPIC).decode(newer)
    assert not issubclass(WriterSchemaUnavailableError, EventDecodeError)


def test_confluent_framing_without_a_registry_is_unavailable_not_corrupt() -> None:
    with pytest.raises(WriterSchemaUnavailableError, match="no schema registry"):
        EventCodec(TOPIC).decode(b"\x00\x00\x00\x00\x01garbage")


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


def test_confluent_records_of_a_v1_writer_are_upgraded(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = {"url": "mock://segstream-v1-writer"}
    # confluent-kafka's mock registry keeps its schemas per client object: let the codec and the
    # v1 serializer share one, as two processes share one real registry.
    shared = SchemaRegistryClient.new_client(registry)
    monkeypatch.setattr(SchemaRegistryClient, "new_client", staticmethod(lambda _conf: shared))
    v1_serializer = AvroSerializer(shared, load_schema_text(1))
    platform = example(tags=None, attributes={"platform_topic": "customer.end"}).to_avro()
    data = v1_serializer(platform | {"tags": []}, SerializationContext(TOPIC, MessageField.VALUE))
    decoded = EventCodec(TOPIC, registry).decode(data)
    assert decoded.tags is None
    assert decoded.customer_id == "C-1001"


def test_a_registry_that_does_not_answer_makes_the_schema_unavailable() -> None:
    data = EventCodec(TOPIC, {"url": "mock://segstream-elsewhere"}).encode(example())
    # Nothing listens on the discard port of the loopback address: connection refused.
    silent = EventCodec(TOPIC, {"url": "http://127.0.0.1:9", "max.retries": 0})
    with pytest.raises(WriterSchemaUnavailableError, match="unreachable"):
        silent.decode(data)


def test_a_schema_id_the_registry_does_not_know_makes_the_schema_unavailable() -> None:
    data = EventCodec(TOPIC, {"url": "mock://segstream-one"}).encode(example())
    other = EventCodec(TOPIC, {"url": "mock://segstream-other"})
    with pytest.raises(WriterSchemaUnavailableError, match="not available from the registry"):
        other.decode(data)
