"""Static membership: an instance restarted under the same ``group.instance.id`` gets its
partitions back and the rest of the group does not rebalance at all."""

from __future__ import annotations

import pytest

from sandbox.records import make_event, produce
from support.consumers import ConsumerGroup
from support.crm import CrmSimulator
from support.metrics import metric
from support.waiting import eventually_sync

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_a_static_member_restarts_without_moving_partitions(
    kafka_bootstrap: str, pipeline_topics, crm: CrmSimulator, group: ConsumerGroup
) -> None:
    static = {"session_timeout_ms": 30_000}
    first = group.start(group_instance_id="consumer-a", **static)
    group.start(group_instance_id="consumer-b", **static)
    a_url, b_url = group.metrics_urls

    def settled() -> bool:
        return [metric(u, "segstream_consumer_assigned_partitions") for u in (a_url, b_url)] == [
            6.0,
            6.0,
        ]

    eventually_sync(settled, timeout=60)
    b_rebalances = metric(b_url, "segstream_consumer_rebalances_total", kind="revoke")

    assert first.stop() == 0
    restarted = group.start(group_instance_id="consumer-a", **static)
    a_url = group.metrics_urls[-1]
    eventually_sync(
        lambda: metric(a_url, "segstream_consumer_assigned_partitions") == 6, timeout=30
    )

    # Work flows to both, and the member that stayed never gave anything up.
    events = [make_event(f"C-static-{n}", 1) for n in range(24)]
    produce(kafka_bootstrap, pipeline_topics.events, events)
    eventually_sync(lambda: len(crm.applied()) >= len(events), timeout=30)
    assert metric(b_url, "segstream_consumer_rebalances_total", kind="revoke") == b_rebalances
    assert metric(b_url, "segstream_consumer_assigned_partitions") == 6
    assert restarted.process.poll() is None
