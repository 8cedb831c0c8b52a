"""SIGKILL in the middle of a run: after a restart every event's effect is there, in order, and
no event's effect was written under any key but its own."""

from __future__ import annotations

import pytest

from sandbox.records import ids_by_customer, interleaved_events, produce
from support.consumers import ConsumerGroup
from support.crm import CrmSimulator
from support.waiting import eventually_sync

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_a_killed_consumer_loses_nothing_and_writes_nothing_twice(
    kafka_bootstrap: str, pipeline_topics, crm: CrmSimulator, group: ConsumerGroup
) -> None:
    crm.set_faults(latency_ms_min=5.0, latency_ms_max=20.0)
    events = interleaved_events(customers=200, total=3000, seed=5)
    produce(kafka_bootstrap, pipeline_topics.events, events)
    victim = group.start()
    eventually_sync(lambda: len(crm.applied()) >= 800, timeout=60)
    victim.kill()
    written_before_restart = len(crm.applied())
    assert written_before_restart < len(events), "the run finished before the kill"

    group.start()
    by_id = {e.event_id: e for e in events}
    eventually_sync(lambda: set(by_id) <= {w["event_id"] for w in crm.applied()}, timeout=120)

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
