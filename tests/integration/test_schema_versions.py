"""Records of every contract version on a real topic: v1 bytes are applied as v2 says, and a
record whose writer schema is unknown holds its partition until a consumer that knows it runs."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from confluent_kafka import KafkaError, Message, Producer

from sandbox.kafka.cli import describe_group_offsets
from sandbox.records import interleaved_events, make_event, produce
from schemas.codec import SingleObjectCodec, interaction_completed_schema
from schemas.topics import DLQ_HEADER_PREFIX, HEADER_EVENT_ID
from support.consumers import ConsumerGroup
from support.crm import CrmSimulator
from support.kafka import read_all
from support.metrics import metric
from support.waiting import eventually_sync

pytestmark = pytest.mark.kafka

T = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def produce_bytes(
    bootstrap: str, topic: str, records: list[tuple[str, str, bytes]]
) -> list[Message]:
    """(customer id, event id, value) each, keyed and headed as the bridge does; the acks."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    acked: list[Message] = []

    def delivered(error: KafkaError | None, message: Message) -> None:
        assert error is None, error
        acked.append(message)

    for customer, event_id, value in records:
        producer.produce(
            topic,
            key=customer.encode(),
            value=value,
            headers=[(HEADER_EVENT_ID, event_id.encode())],
            on_delivery=delivered,
        )
    assert producer.flush(30) == 0
    return acked


def v1_record(event_id: str, minute: int, **fields: Any) -> dict[str, Any]:
    at = T.replace(minute=minute)
    return {
        "event_id": event_id,
        "customer_id": "C-v1",
        "contact_id": f"contact-{event_id}",
        "channel": "voice",
        "started_at": at,
        "completed_at": at,
        "interaction_summary": None,
        "sentiment_score": None,
        "tags": [],
        "caller_id": None,
        "queue_id": None,
        "agent_id": None,
        "attributes": {},
    } | fields


def test_v1_records_on_the_topic_are_applied_as_contract_v2_reads_them(
    kafka_bootstrap: str, pipeline_topics: Any, crm: CrmSimulator, group: ConsumerGroup
) -> None:
    v1 = SingleObjectCodec(writer_schema=interaction_completed_schema(1))
    architect = v1_record(
        "arch", 10, interaction_summary="upsell", sentiment_score=0.3, tags=["vip"]
    )
    # What the v1 bridge wrote for the platform's acw event: tags [] although it carries none.
    acw = v1_record(
        "conv-part-acw",
        20,
        interaction_summary="callback-requested",
        attributes={"platform_topic": "acw", "participant_id": "part"},
    )
    produce_bytes(
        kafka_bootstrap,
        pipeline_topics.events,
        [("C-v1", "arch", v1.encode(architect)), ("C-v1", "conv-part-acw", v1.encode(acw))],
    )
    group.start()
    eventually_sync(lambda: crm.applied_event_ids() == ["arch", "conv-part-acw"], timeout=60)
    record = crm.customer("C-v1")
    assert record is not None
    assert record["attributes"] == {
        "last_interaction_summary": "callback-requested",
        "sentiment": 0.3,
        "segmentation_tags": ["vip"],
    }
    assert read_all(kafka_bootstrap, pipeline_topics.dead_letters) == []


def newer_schema() -> dict[str, Any]:
    """What a producer upgraded before the consumers might write: one field more."""
    schema = interaction_completed_schema()
    schema["fields"].append({"name": "language", "type": ["null", "string"], "default": None})
    return schema


def test_an_unknown_writer_schema_holds_its_partition_until_a_consumer_that_knows_it_runs(
    kafka_bootstrap: str, pipeline_topics: Any, crm: CrmSimulator, group: ConsumerGroup
) -> None:
    newer = newer_schema()
    held_event = make_event("C-newer", 1)
    value = SingleObjectCodec(writer_schema=newer).encode(held_event.to_avro() | {"language": "de"})
    [held] = produce_bytes(
        kafka_bootstrap, pipeline_topics.events, [("C-newer", held_event.event_id, value)]
    )
    behind = make_event("C-newer", 2)  # the same customer: must wait behind it, in order
    produced = produce(
        kafka_bootstrap,
        pipeline_topics.events,
        [behind, *interleaved_events(customers=40, total=120, seed=4)],
    )
    elsewhere = {p.event.event_id for p in produced if p.partition != held.partition()}
    assert len(elsewhere) > 60

    old = group.start()
    old_metrics = group.metrics_urls[0]
    # The other partitions flow; the customer behind the held record waits.
    eventually_sync(lambda: elsewhere <= set(crm.applied_event_ids()), timeout=60)
    assert metric(old_metrics, "segstream_consumer_held_partitions") == 1
    assert "C-newer" not in {w["customer_id"] for w in crm.applied()}
    [row] = [
        r
        for r in describe_group_offsets(kafka_bootstrap, group.group_id)
        if r.topic == pipeline_topics.events and r.partition == held.partition()
    ]
    assert row.committed is None or row.committed <= held.offset()
    assert read_all(kafka_bootstrap, pipeline_topics.dead_letters) == []

    # The upgraded consumer (told of the new writer schema) takes the partition over.
    schema_file = group.run_dir / "interaction_completed.v3.avsc"
    schema_file.write_text(json.dumps(newer))
    group.start(writer_schema_files=str(schema_file))
    assert old.stop() == 0
    eventually_sync(
        lambda: (
            [w["event_id"] for w in crm.applied() if w["customer_id"] == "C-newer"]
            == [held_event.event_id, behind.event_id]
        ),
        timeout=60,
    )
    assert read_all(kafka_bootstrap, pipeline_topics.dead_letters) == []


def test_with_unknown_writer_schema_dead_letter_the_record_is_dead_lettered_and_its_key_flows(
    kafka_bootstrap: str, pipeline_topics: Any, crm: CrmSimulator, group: ConsumerGroup
) -> None:
    """The opt-out README documents (``UNKNOWN_WRITER_SCHEMA=dead-letter``, for a team that
    would rather replay than wait): nothing is held, the record is dead-lettered at decode, and
    the events behind it, its own customer's too, are written."""
    held_event = make_event("C-newer", 1)
    value = SingleObjectCodec(writer_schema=newer_schema()).encode(
        held_event.to_avro() | {"language": "de"}
    )
    [unknown] = produce_bytes(
        kafka_bootstrap, pipeline_topics.events, [("C-newer", held_event.event_id, value)]
    )
    behind = make_event("C-newer", 2)
    others = interleaved_events(customers=10, total=30, seed=5)
    produce(kafka_bootstrap, pipeline_topics.events, [behind, *others])

    group.start(unknown_writer_schema="dead-letter")
    wanted = {e.event_id for e in [behind, *others]}
    eventually_sync(lambda: wanted <= set(crm.applied_event_ids()), timeout=60)
    [dead] = eventually_sync(lambda: read_all(kafka_bootstrap, pipeline_topics.dead_letters))
    headers = dict(dead.headers() or [])
    assert headers[f"{DLQ_HEADER_PREFIX}stage"] == b"decode"
    assert headers[f"{DLQ_HEADER_PREFIX}error.class"] == b"WriterSchemaUnavailableError"
    assert int(headers[f"{DLQ_HEADER_PREFIX}offset"]) == unknown.offset()
    assert dead.value() == value
    assert metric(group.metrics_urls[0], "segstream_consumer_held_partitions") == 0
    assert held_event.event_id not in crm.applied_event_ids()
