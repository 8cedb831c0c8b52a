"""A duplicate event is not sent to the CRM again: not in the same run, not after a restart, not
after its partition moved to another instance (the new owner rebuilds the history from Kafka)."""

from __future__ import annotations

import time

import pytest

from sandbox.records import make_event, produce
from support.consumers import ConsumerGroup
from support.crm import CrmSimulator, event_id_of
from support.metrics import metric
from support.waiting import eventually_sync

pytestmark = pytest.mark.kafka


def requests_for(crm: CrmSimulator, event_id: str) -> list[dict]:  # type: ignore[type-arg]
    return [r for r in crm.requests() if event_id_of(r["idempotency_key"] or "") == event_id]


def written(crm: CrmSimulator, event_id: str) -> bool:
    return any(w["event_id"] == event_id for w in crm.applied())


def send_duplicate_then_marker(  # type: ignore[no-untyped-def]
    kafka_bootstrap: str, topic: str, original, marker_sequence: int
):
    """The duplicate, then a later event of the same customer: once the marker is written the
    duplicate has certainly been handled (same key, strictly in order)."""
    marker = make_event(original.customer_id, marker_sequence)
    produce(kafka_bootstrap, topic, [original, marker])
    return marker


def test_a_duplicate_in_the_same_run_is_skipped(
    kafka_bootstrap: str, pipeline_topics, crm: CrmSimulator, group: ConsumerGroup
) -> None:
    original = make_event("C-dup", 1)
    produce(kafka_bootstrap, pipeline_topics.events, [original])
    group.start()
    eventually_sync(lambda: written(crm, original.event_id), timeout=30)
    calls = len(requests_for(crm, original.event_id))
    marker = send_duplicate_then_marker(kafka_bootstrap, pipeline_topics.events, original, 2)
    eventually_sync(lambda: written(crm, marker.event_id), timeout=30)
    assert len(requests_for(crm, original.event_id)) == calls


def test_a_duplicate_after_a_restart_is_skipped(
    kafka_bootstrap: str, pipeline_topics, crm: CrmSimulator, group: ConsumerGroup
) -> None:
    original = make_event("C-dup", 1)
    produce(kafka_bootstrap, pipeline_topics.events, [original])
    first = group.start()
    eventually_sync(lambda: written(crm, original.event_id), timeout=30)
    assert first.stop() == 0
    calls = len(requests_for(crm, original.event_id))

    marker = send_duplicate_then_marker(kafka_bootstrap, pipeline_topics.events, original, 2)
    group.start()
    eventually_sync(lambda: written(crm, marker.event_id), timeout=60)
    assert len(requests_for(crm, original.event_id)) == calls


def test_a_duplicate_after_its_partition_moved_to_another_instance_is_skipped(
    kafka_bootstrap: str, pipeline_topics, crm: CrmSimulator, group: ConsumerGroup
) -> None:
    originals = [make_event(f"C-move-{n}", 1) for n in range(24)]  # spread over the partitions
    produce(kafka_bootstrap, pipeline_topics.events, originals)
    first = group.start()
    eventually_sync(lambda: all(written(crm, e.event_id) for e in originals), timeout=30)
    group.start()  # the second instance joins; then the first leaves and hands everything over
    assert first.stop() == 0
    calls = {e.event_id: len(requests_for(crm, e.event_id)) for e in originals}

    markers = [make_event(e.customer_id, 2) for e in originals]
    produce(
        kafka_bootstrap,
        pipeline_topics.events,
        [x for pair in zip(originals, markers, strict=True) for x in pair],
    )
    eventually_sync(lambda: all(written(crm, m.event_id) for m in markers), timeout=60)
    assert {e.event_id: len(requests_for(crm, e.event_id)) for e in originals} == calls


def test_a_duplicate_after_a_restart_is_skipped_while_the_consumer_lags_twice_the_ttl(
    kafka_bootstrap: str, pipeline_topics, crm: CrmSimulator, group: ConsumerGroup
) -> None:
    """Every record is two TTLs old when it is read (written with timestamps that far back):
    the restarted owner still rebuilds the TTL before its committed offset, so dedupe itself
    (not only the customer state behind it) catches the copy."""
    ttl_s = 60
    written_at = int(time.time() * 1000) - 2 * ttl_s * 1000 - 5_000
    original = make_event("C-lag", 1)
    produce(kafka_bootstrap, pipeline_topics.events, [original], timestamps_ms=[written_at])
    first = group.start(dedupe_ttl_s=ttl_s)
    eventually_sync(lambda: written(crm, original.event_id), timeout=30)
    assert first.stop() == 0
    calls = len(requests_for(crm, original.event_id))

    marker = make_event(original.customer_id, 2)
    produce(
        kafka_bootstrap,
        pipeline_topics.events,
        [original, marker],
        timestamps_ms=[written_at + 5_000, written_at + 6_000],  # the copy within the TTL
    )
    group.start(dedupe_ttl_s=ttl_s)
    eventually_sync(lambda: written(crm, marker.event_id), timeout=60)
    assert metric(group.metrics_urls[-1], "segstream_consumer_dedupe_hits_total") == 1
    assert len(requests_for(crm, original.event_id)) == calls
