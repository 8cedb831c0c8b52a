"""Errors sorted by whom they are about: poison to the dead-letter topic, an unwell or unusable
CRM held back (never dead-lettered), and everything delivered in order once it recovers."""

from __future__ import annotations

import json
import time

import pytest

from sandbox.kafka.cli import describe_group_offsets
from sandbox.records import ids_by_customer, interleaved_events, make_event, produce, produce_raw
from sandbox.secrets import new_bearer_token
from schemas.codec import SingleObjectCodec
from schemas.topics import DLQ_HEADER_PREFIX
from support.consumers import ConsumerGroup
from support.crm import CrmSimulator
from support.kafka import read_all
from support.metrics import metric
from support.waiting import eventually_sync

pytestmark = pytest.mark.kafka


def update_keys(crm: CrmSimulator) -> list[str]:
    return [w["event_id"] for w in crm.applied()]


def test_poison_goes_to_the_dead_letter_topic_with_its_context_and_the_rest_flows(
    kafka_bootstrap: str, pipeline_topics, crm: CrmSimulator, group: ConsumerGroup
) -> None:
    crm.set_faults(reject_customer_prefix="REJECT-")
    topic = pipeline_topics.events
    garbage = produce_raw(
        kafka_bootstrap,
        topic,
        b"C-garbage",
        b"\x7b\x01not-avro",
        [("event-id", b"garbage-1"), ("source", b"test")],
    )
    invalid_record = make_event("C-invalid", 1).to_avro() | {"sentiment_score": 7.5}
    invalid = produce_raw(
        kafka_bootstrap,
        topic,
        b"C-invalid",
        SingleObjectCodec().encode(invalid_record),
        [("event-id", b"invalid-1")],
    )
    rejected_event = make_event("REJECT-1", 1)
    [rejected] = produce(kafka_bootstrap, topic, [rejected_event])
    good = interleaved_events(customers=30, total=200)
    produce(kafka_bootstrap, topic, good)
    group.start()

    eventually_sync(lambda: {e.event_id for e in good} <= set(update_keys(crm)), timeout=60)
    dead = eventually_sync(
        lambda: (
            (r := read_all(kafka_bootstrap, pipeline_topics.dead_letters)) and len(r) >= 3 and r
        ),
        timeout=30,
    )
    assert len(dead) == 3
    by_key = {m.key(): m for m in dead}
    expectations = {
        b"C-garbage": ("decode", "EventDecodeError", garbage),
        b"C-invalid": ("validate", "EventValidationError", invalid),
        b"REJECT-1": ("sink", "SinkRejectedError", (rejected.partition, rejected.offset)),
    }
    for key, (stage, error_class, (partition, offset)) in expectations.items():
        message = by_key[key]
        headers = dict(message.headers() or [])
        assert headers[f"{DLQ_HEADER_PREFIX}stage"] == stage.encode()
        assert headers[f"{DLQ_HEADER_PREFIX}error.class"] == error_class.encode()
        assert headers[f"{DLQ_HEADER_PREFIX}topic"] == topic.encode()
        assert headers[f"{DLQ_HEADER_PREFIX}partition"] == str(partition).encode()
        assert headers[f"{DLQ_HEADER_PREFIX}offset"] == str(offset).encode()
        assert headers[f"{DLQ_HEADER_PREFIX}group"]
        assert headers[f"{DLQ_HEADER_PREFIX}error.message"]
    # The CRM's error text echoes the customer; the context keeps its status and code only.
    sink_message = dict(by_key[b"REJECT-1"].headers() or [])[f"{DLQ_HEADER_PREFIX}error.message"]
    assert b"422" in sink_message
    assert b"'rejected'" in sink_message
    assert b"REJECT-1" not in sink_message
    assert "rejected by a CRM business rule" not in group.instances[0].log_text()
    # The original record travels unchanged: value and original headers.
    assert by_key[b"C-garbage"].value() == b"\x7b\x01not-avro"
    assert dict(by_key[b"C-garbage"].headers() or [])["source"] == b"test"
    assert dict(by_key[b"REJECT-1"].headers() or [])["event-id"] == rejected_event.event_id.encode()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("event_id", "k-1\r\nX-A: 1"),  # issue 8: aiohttp refused the header; the group stopped
        ("customer_id", "${input.customerId}"),  # a flow's unresolved variable
        ("contact_id", "c" * 129),
        ("queue_id", "q\x00"),
    ],
)
def test_a_record_with_an_unusable_id_already_on_the_topic_is_dead_lettered_and_all_else_flows(
    kafka_bootstrap: str, pipeline_topics, crm: CrmSimulator, group: ConsumerGroup,
    *, field: str, value: str,
) -> None:  # fmt: skip
    """Written by a producer older than the checks at the bridge's door: valid Avro, so only
    the consumer's own checks stand between it and the CRM. Before and after it, under the
    same key, healthy events; the consumer keeps running."""
    topic = pipeline_topics.events
    bad = make_event("C-unusable", 2).to_avro() | {field: value}
    before, after = make_event("C-unusable", 1), make_event("C-unusable", 3)
    produce(kafka_bootstrap, topic, [before])
    where = produce_raw(
        kafka_bootstrap,
        topic,
        str(bad["customer_id"]).encode(),
        SingleObjectCodec().encode(bad),
        [("event-id", str(bad["event_id"]).encode()), ("source", b"test")],
    )
    good = [after, *interleaved_events(customers=10, total=50)]
    produce(kafka_bootstrap, topic, good)
    group.start()

    wanted = {e.event_id for e in [before, *good]}
    eventually_sync(lambda: wanted <= set(update_keys(crm)), timeout=60)
    [dead] = eventually_sync(lambda: read_all(kafka_bootstrap, pipeline_topics.dead_letters))
    headers = dict(dead.headers() or [])
    assert headers[f"{DLQ_HEADER_PREFIX}stage"] == b"validate"
    assert headers[f"{DLQ_HEADER_PREFIX}error.class"] == b"EventValidationError"
    assert field.encode() in headers[f"{DLQ_HEADER_PREFIX}error.message"]
    assert (
        int(headers[f"{DLQ_HEADER_PREFIX}partition"]),
        int(headers[f"{DLQ_HEADER_PREFIX}offset"]),
    ) == where
    assert dead.value() == SingleObjectCodec().encode(bad)  # the record as it was
    assert value not in {str(w.get(field)) for w in crm.applied()}
    assert group.stop_all() == {"consumer-1": 0}  # it was running all along, and stops cleanly


def test_a_30_second_crm_outage_dead_letters_nothing_and_order_holds_after(
    kafka_bootstrap: str, pipeline_topics, crm: CrmSimulator, group: ConsumerGroup
) -> None:
    events = interleaved_events(customers=40, total=600)
    first, second = events[:200], events[200:]
    produce(kafka_bootstrap, pipeline_topics.events, first)
    group.start()
    eventually_sync(lambda: len(crm.applied()) >= len(first), timeout=60)

    crm.set_faults(outage=True)
    produce(kafka_bootstrap, pipeline_topics.events, second)
    outage_ends = time.monotonic() + 30
    eventually_sync(
        lambda: metric(group.metrics_urls[0], "segstream_consumer_circuit_open") == 1, timeout=30
    )
    while time.monotonic() < outage_ends:  # the outage lasts 30 s whatever the consumer does
        assert read_all(kafka_bootstrap, pipeline_topics.dead_letters) == []
        time.sleep(1)
    crm.set_faults(outage=False)

    eventually_sync(lambda: len(crm.applied()) >= len(events), timeout=90)
    assert read_all(kafka_bootstrap, pipeline_topics.dead_letters) == []
    assert crm.event_ids_by_customer() == ids_by_customer(events)


def test_a_revoked_token_pauses_consumption_and_dead_letters_nothing(
    kafka_bootstrap: str, pipeline_topics, crm: CrmSimulator, group: ConsumerGroup
) -> None:
    crm.set_faults(revoke_token=True)
    events = interleaved_events(customers=20, total=100)
    produce(kafka_bootstrap, pipeline_topics.events, events)
    group.start()
    url = group.metrics_urls[0]
    eventually_sync(lambda: metric(url, "segstream_consumer_circuit_open") == 1, timeout=30)
    eventually_sync(lambda: metric(url, "segstream_consumer_paused_partitions") > 0, timeout=30)
    assert crm.applied() == []
    assert read_all(kafka_bootstrap, pipeline_topics.dead_letters) == []
    refused = [r for r in crm.requests() if r["status"] == 401]
    assert refused, "the consumer never tried"

    crm.set_faults(revoke_token=False)
    eventually_sync(lambda: len(crm.applied()) >= len(events), timeout=90)
    assert read_all(kafka_bootstrap, pipeline_topics.dead_letters) == []
    assert metric(url, "segstream_consumer_circuit_open") == 0


def test_the_dead_letter_record_is_valid_json_free_of_secrets(
    kafka_bootstrap: str, pipeline_topics, crm: CrmSimulator, group: ConsumerGroup
) -> None:
    produce_raw(kafka_bootstrap, pipeline_topics.events, b"C-x", b"garbage", [])
    group.start()
    [dead] = eventually_sync(
        lambda: read_all(kafka_bootstrap, pipeline_topics.dead_letters), timeout=30
    )
    token = crm.token_file.read_text().strip()
    for _, value in dead.headers() or []:
        assert token.encode() not in value
    logs = group.instances[0].log_text()
    assert token not in logs
    for line in logs.splitlines():
        if line.startswith("{"):
            json.loads(line)


def test_a_dead_letter_that_cannot_be_written_stops_the_consumer_before_its_offset(
    kafka_bootstrap: str, topics, crm: CrmSimulator, group_id: str, run_dir
) -> None:
    topic = topics.create("interactions", partitions=1)
    consumers = ConsumerGroup(
        bootstrap=kafka_bootstrap,
        topic=topic,
        dlq=f"missing-{group_id}",  # never created, and the broker creates no topic by itself
        group_id=group_id,
        crm=crm,
        run_dir=run_dir,
    )
    [before] = produce(kafka_bootstrap, topic, [make_event("C-before", 1)])
    _, poison_offset = produce_raw(kafka_bootstrap, topic, b"C-poison", b"garbage", [])
    produce(kafka_bootstrap, topic, [make_event("C-after", 1)])

    instance = consumers.start(dead_letter_timeout_ms=3000)
    try:
        assert instance.process.wait(60) == 3  # a fatal condition, not a setting
    finally:
        instance.stop()
    assert "dead-letter topic did not acknowledge" in instance.log_text()
    [row] = [r for r in describe_group_offsets(kafka_bootstrap, group_id) if r.topic == topic]
    assert row.committed is not None
    assert row.committed <= poison_offset  # the poison record will be read again
    assert before.event.event_id in update_keys(crm)


def test_a_record_too_large_for_the_dead_letter_topic_is_dead_lettered_without_it_and_all_flows(
    kafka_bootstrap: str, topics, crm: CrmSimulator, group_id: str, run_dir
) -> None:
    # Poison of 6,000 bytes, a dead-letter topic that takes 4,096: the same bytes can never be
    # written there. Stopping on them would stop every restart and every new owner too.
    topic = topics.create("interactions", partitions=3)
    dlq = topics.create("dlq", partitions=1, config={"max.message.bytes": "4096"})
    consumers = ConsumerGroup(
        bootstrap=kafka_bootstrap, topic=topic, dlq=dlq, group_id=group_id, crm=crm, run_dir=run_dir
    )
    poison_at = produce_raw(kafka_bootstrap, topic, b"C-large", b"\x7b" * 6000, [])
    good = interleaved_events(customers=10, total=60, seed=2)
    produce(kafka_bootstrap, topic, good)
    instance = consumers.start()
    try:
        eventually_sync(lambda: {e.event_id for e in good} <= set(update_keys(crm)), timeout=60)
        [dead] = eventually_sync(lambda: read_all(kafka_bootstrap, dlq), timeout=30)
        assert instance.process.poll() is None
    finally:
        codes = consumers.stop_all()
    assert codes == dict.fromkeys(codes, 0)
    headers = {k: v for k, v in dead.headers() or [] if v is not None}
    assert (dead.key(), dead.value()) == (b"C-large", None)
    assert headers[f"{DLQ_HEADER_PREFIX}value.omitted"] == b"6000"
    assert headers[f"{DLQ_HEADER_PREFIX}topic"] == topic.encode()
    origin = (
        int(headers[f"{DLQ_HEADER_PREFIX}partition"]),
        int(headers[f"{DLQ_HEADER_PREFIX}offset"]),
    )
    assert origin == poison_at  # where the whole record still is
    assert crm.event_ids_by_customer() == ids_by_customer(good)


def test_a_rotated_token_is_read_from_its_file_on_the_first_401(
    kafka_bootstrap: str, pipeline_topics, crm: CrmSimulator, group: ConsumerGroup
) -> None:
    """Issue 11 §6: the consumer read its token once; after a rotation (Kubernetes updates the
    mounted file, the CRM accepts only the new token) it was refused forever."""
    events = interleaved_events(customers=20, total=200, seed=3)
    first, second = events[:100], events[100:]
    produce(kafka_bootstrap, pipeline_topics.events, first)
    consumer = group.start()  # re-reads on schedule only every 60 s (the default)
    eventually_sync(lambda: len(crm.applied()) >= len(first), timeout=60)

    new_token = new_bearer_token()
    crm.rotate_token(new_token)
    produce(kafka_bootstrap, pipeline_topics.events, second)

    eventually_sync(lambda: len(crm.applied()) >= len(events), timeout=60)
    assert crm.event_ids_by_customer() == ids_by_customer(events)
    assert read_all(kafka_bootstrap, pipeline_topics.dead_letters) == []
    assert any(r["status"] == 401 for r in crm.requests()), "the old token was never refused"
    log = consumer.log_text()
    assert "CRM token changed in its file" in log
    assert new_token not in log
