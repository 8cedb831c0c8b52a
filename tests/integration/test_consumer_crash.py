"""SIGKILL in the middle of a run: after a restart every event's effect is there, in order, and
only what the group had not committed at the kill is sent to the CRM again.

Counted in *requests* per event, from the simulator's request log: the simulator applies a key
once whatever is sent, so its applied writes cannot show a consumer that sends too much."""

from __future__ import annotations

from collections import Counter

import pytest

from sandbox.records import ids_by_customer, interleaved_events, produce
from support.consumers import ConsumerGroup
from support.crm import CrmSimulator
from support.kafka import committed_offsets
from support.waiting import eventually_sync

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def update_requests(crm: CrmSimulator) -> Counter[str]:
    """Requests per Idempotency-Key to the update endpoint (the first call of every write)."""
    return Counter(
        r["idempotency_key"]
        for r in crm.requests()
        if r["path"] == "/v1/customers/update" and r["idempotency_key"] is not None
    )


def test_a_killed_consumer_loses_nothing_and_resends_only_what_was_not_committed(
    kafka_bootstrap: str, pipeline_topics, crm: CrmSimulator, group: ConsumerGroup, group_id: str
) -> None:
    crm.set_faults(latency_ms_min=5.0, latency_ms_max=20.0)
    events = interleaved_events(customers=200, total=3000, seed=5)
    produced = produce(kafka_bootstrap, pipeline_topics.events, events)
    victim = group.start(max_in_flight=200)
    eventually_sync(lambda: len(crm.applied()) >= 800, timeout=60)
    victim.kill()
    committed = {
        partition: offset
        for (topic, partition), (offset, _) in committed_offsets(kafka_bootstrap)
        .get(group_id, {})
        .items()
        if topic == pipeline_topics.events
    }
    before = update_requests(crm)
    assert len(crm.applied()) < len(events), "the run finished before the kill"

    group.start(max_in_flight=200)
    by_id = {e.event_id: e for e in events}
    eventually_sync(lambda: set(by_id) <= {w["event_id"] for w in crm.applied()}, timeout=120)

    after = update_requests(crm) - before
    uncommitted = {p.event.event_id for p in produced if p.offset >= committed.get(p.partition, -1)}
    committed_ids = set(by_id) - uncommitted
    assert committed_ids, "nothing was committed before the kill: the test shows nothing"
    # No fault is injected, so each life of the consumer sends each event's update once.
    assert max((before + after).values()) <= 2
    assert max(before.values()) == 1
    # What was committed is never sent again...
    assert not committed_ids & set(after)
    # ...and what is sent again is bounded by what was in flight, uncommitted, at the kill.
    resent = set(before) & set(after)
    assert resent <= uncommitted

    updates = crm.applied()
    applied_ids = [w["event_id"] for w in updates]
    assert len(applied_ids) == len(set(applied_ids)), "an event's effect was applied twice"
    assert set(applied_ids) == set(by_id)
    for write in updates:  # each effect is its own event's, under its own key
        event = by_id[write["event_id"]]
        assert write["customer_id"] == event.customer_id
        assert write["body"]["attributes"]["last_interaction_summary"] == event.interaction_summary
    sent = ids_by_customer(events)
    assert crm.event_ids_by_customer() == sent
    for customer_id, ids in sent.items():
        record = crm.customer(customer_id)
        assert record is not None
        assert (
            record["attributes"]["last_interaction_summary"] == by_id[ids[-1]].interaction_summary
        )
