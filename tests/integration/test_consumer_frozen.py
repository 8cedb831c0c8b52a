"""An instance frozen past its session (SIGSTOP, like a suspended VM) is replaced; when it runs
again it must not write anything stale over what its replacement wrote: order per customer and
every customer's final state hold."""

from __future__ import annotations

import signal

import pytest

from sandbox.records import ids_by_customer, interleaved_events, produce
from support.consumers import ConsumerGroup
from support.crm import CrmSimulator
from support.metrics import sample
from support.waiting import eventually_sync

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def rejoined(log: str) -> bool:
    """An assignment (even of nothing) after the loss: a member of the group again."""
    return "partitions assigned" in log.rpartition("partitions lost")[2]


def test_a_frozen_instance_writes_nothing_stale_when_it_wakes(
    kafka_bootstrap: str, pipeline_topics, crm: CrmSimulator, group: ConsumerGroup
) -> None:
    crm.set_faults(latency_ms_min=5.0, latency_ms_max=15.0)
    events = interleaved_events(customers=40, total=1200, seed=21)
    produce(kafka_bootstrap, pipeline_topics.events, events[:600])
    # Slow on purpose: when frozen, the instance holds hundreds of records waiting for tokens,
    # each of which would fire the moment it wakes up.
    frozen = group.start(crm_rate_limit_per_s=40, crm_rate_burst=20)
    eventually_sync(lambda: len(crm.applied()) >= 100, timeout=60)
    frozen.process.send_signal(signal.SIGSTOP)
    try:
        group.start()  # unlimited; takes over once the frozen one's 6 s session expires
        produce(kafka_bootstrap, pipeline_topics.events, events[600:])
        eventually_sync(lambda: len(crm.applied()) >= len(events), timeout=120)
        # Every write applied is not every call made: a call whose answer came after the
        # client's timeout is sent again. The replacement is idle once it holds no record.
        replacement = group.metrics_urls[-1]
        eventually_sync(
            lambda: sample(replacement, "segstream_consumer_in_flight_records") == 0, timeout=60
        )
        requests_before_waking = len(crm.requests())
    finally:
        frozen.process.send_signal(signal.SIGCONT)
    # Its replacement is done and idle, so any CRM call from here on is the woken instance
    # firing what it held when it froze. The CRM's idempotency would make those replays
    # harmless, but a CRM without it would take stale writes: it must not call at all.
    eventually_sync(lambda: "partitions lost" in frozen.log_text(), timeout=30)
    assert crm.requests()[requests_before_waking:] == []
    # It rejoins the group. Stopping it before it is a member again would leave the group's
    # rebalance waiting for it, and the replacement's SIGTERM with it (the bound on that:
    # test_consumer_shutdown.py); a user stops a settled group.
    eventually_sync(lambda: rejoined(frozen.log_text()), timeout=60)

    sent = ids_by_customer(events)
    assert crm.event_ids_by_customer() == sent
    by_id = {e.event_id: e for e in events}
    for customer_id, ids in sent.items():
        record = crm.customer(customer_id)
        assert record is not None
        assert (
            record["attributes"]["last_interaction_summary"] == by_id[ids[-1]].interaction_summary
        )
