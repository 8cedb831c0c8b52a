"""Per-customer order under concurrency, and commits that never pass an unfinished record."""

from __future__ import annotations

import pytest

from sandbox.kafka.cli import describe_group_offsets
from sandbox.records import ids_by_customer, interleaved_events, make_event, produce
from support.consumers import ConsumerGroup
from support.crm import CrmSimulator
from support.kafka import TopicFactory
from support.waiting import eventually_sync

pytestmark = pytest.mark.kafka


@pytest.mark.slow
def test_every_customer_sees_its_events_in_the_order_they_were_sent(
    kafka_bootstrap: str, pipeline_topics, crm: CrmSimulator, group: ConsumerGroup
) -> None:
    crm.set_faults(latency_ms_min=1.0, latency_ms_max=50.0)
    events = interleaved_events(customers=300, total=5000)
    produce(kafka_bootstrap, pipeline_topics.events, events)
    group.start()

    eventually_sync(lambda: len(crm.applied()) >= len(events), timeout=180)

    assert crm.event_ids_by_customer() == ids_by_customer(events)
    final = {e.customer_id: e for e in events}
    for customer_id, last in list(final.items())[:50]:
        record = crm.customer(customer_id)
        assert record is not None
        assert record["attributes"]["last_interaction_summary"] == last.interaction_summary


def test_a_slow_record_holds_its_partitions_committed_offset_below_it(
    kafka_bootstrap: str, topics: TopicFactory, crm: CrmSimulator, group_id: str, run_dir
) -> None:
    topic, dlq = topics.create("single", partitions=1), topics.create("dlq", partitions=1)
    consumers = ConsumerGroup(
        bootstrap=kafka_bootstrap, topic=topic, dlq=dlq, group_id=group_id, crm=crm, run_dir=run_dir
    )
    crm.create_customer("SLOW-1")
    crm.set_faults(slow_customer_prefix="SLOW-", slow_customer_ms=12_000.0)
    before = [make_event("C-first", 1)]
    slow = [make_event("SLOW-1", 1)]
    after = [make_event(f"C-after-{n}", 1) for n in range(40)]
    produced = produce(kafka_bootstrap, topic, before + slow + after)
    slow_offset = produced[1].offset
    try:
        consumers.start(crm_timeout_s=30)  # a slow CRM, not a broken one: no client timeout
        after_ids = {e.event_id for e in after}
        eventually_sync(lambda: after_ids <= {w["event_id"] for w in crm.applied()}, timeout=30)

        def committed() -> int | None:
            [row] = [
                r for r in describe_group_offsets(kafka_bootstrap, group_id) if r.topic == topic
            ]
            return row.committed

        # Everything after the slow record is written, and the group still commits only up to
        # it: a crash now would re-read the slow record and everything after it.
        assert eventually_sync(lambda: committed() == slow_offset, timeout=15)
        assert [w for w in crm.applied() if w["customer_id"] == "SLOW-1"] == []
        assert committed() == slow_offset

        eventually_sync(lambda: committed() == produced[-1].offset + 1, timeout=40)
        assert [w["event_id"] for w in crm.applied() if w["customer_id"] == "SLOW-1"] == [
            slow[0].event_id
        ]
    finally:
        codes = consumers.stop_all()
    assert codes == dict.fromkeys(codes, 0)
