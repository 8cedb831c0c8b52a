"""Static membership: an instance restarted under the same ``group.instance.id`` gets its
partitions back and the rest of the group does not rebalance at all."""

from __future__ import annotations

import time

import pytest

from sandbox.records import interleaved_events, make_event, produce
from support.consumers import ConsumerGroup
from support.crm import CrmSimulator
from support.metrics import metric, sample
from support.waiting import eventually_sync

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def rebalances(url: str) -> dict[str, float]:
    """Rebalance callbacks by kind; every kind must be on the page (a missing series is not 0)."""
    counts = {}
    for kind in ("assign", "revoke"):
        value = sample(url, "segstream_consumer_rebalances_total", kind=kind)
        assert value is not None, f"no rebalances_total{{kind={kind!r}}} on {url}"
        counts[kind] = value
    return counts


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
    b_before = rebalances(b_url)

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
    # B took nothing over while A was away and gave nothing back when it returned: with dynamic
    # membership A's leaving assigns its 6 partitions to B and its return revokes them.
    assert rebalances(b_url) == b_before
    assert sample(b_url, "segstream_consumer_assigned_partitions") == 6
    assert restarted.process.poll() is None


def test_a_second_instance_with_the_same_instance_id_fences_the_first_which_exits_3(
    kafka_bootstrap: str, pipeline_topics, crm: CrmSimulator, group: ConsumerGroup
) -> None:
    """Issue 8 §7: the fenced instance kept polling and owned nothing; it must stop, saying why."""
    static = {"group_instance_id": "consumer-a", "session_timeout_ms": 30_000}
    first = group.start(**static)
    eventually_sync(
        lambda: metric(group.metrics_urls[0], "segstream_consumer_assigned_partitions") == 12,
        timeout=60,
    )
    second = group.start(**static)

    assert first.process.wait(60) == 3
    log = first.log_text()
    assert "fenced" in log
    assert "consumer-a" in log  # which id is shared, so an operator can find the other one
    # The newcomer owns the group's partitions and does the work.
    events = [make_event(f"C-fenced-{n}", 1) for n in range(24)]
    produce(kafka_bootstrap, pipeline_topics.events, events)
    eventually_sync(lambda: len(crm.applied()) >= len(events), timeout=60)
    assert second.process.poll() is None
    first.stop()  # already exited: the group fixture expects only the survivor to exit 0
    group.instances.remove(first)


def test_a_fenced_instance_with_a_backlog_stops_long_before_its_session_would_time_out(
    kafka_bootstrap: str, pipeline_topics, crm: CrmSimulator, group: ConsumerGroup
) -> None:
    """librdkafka queues its fatal error behind the records already fetched: an instance with a
    backlog read it only after them, at about its session timeout (29 s of 30 here), writing as
    a fenced member meanwhile. The commit callback hears the fence at once."""
    crm.set_faults(latency_ms_min=20.0, latency_ms_max=40.0)
    events = interleaved_events(customers=200, total=6000, seed=3)
    produce(kafka_bootstrap, pipeline_topics.events, events)
    static = {
        "group_instance_id": "consumer-a",
        "session_timeout_ms": 30_000,
        "crm_rate_limit_per_s": 100,  # a backlog that lasts: about a minute of work
    }
    first = group.start(**static)
    eventually_sync(lambda: len(crm.applied()) >= 50, timeout=60)
    started = time.monotonic()
    group.start(**static)

    assert first.process.wait(60) == 3
    assert time.monotonic() - started < 15  # well inside the 30 s session
    assert "stopping: fenced" in first.log_text()
    first.stop()
    group.instances.remove(first)
