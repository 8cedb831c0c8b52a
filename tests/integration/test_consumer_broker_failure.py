"""A broker of a three-node cluster killed in the middle of a run, then brought back: the
consumer rides through the leader moves, nothing is lost, order per customer holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.kafka.broker import LocalKafka
from sandbox.records import ids_by_customer, interleaved_events, produce
from support.consumers import ConsumerGroup
from support.crm import CrmSimulator
from support.kafka import TopicFactory, read_all
from support.waiting import eventually_sync

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


@pytest.mark.xdist_group("kafka_cluster3")  # one three-node cluster per run
def test_a_killed_broker_loses_nothing_and_keeps_order(
    kafka_cluster3: LocalKafka, crm: CrmSimulator, group_id: str, run_dir: Path
) -> None:
    bootstrap = kafka_cluster3.bootstrap_servers
    topics = TopicFactory(bootstrap)
    durable = {"min.insync.replicas": "2"}
    topic = topics.create("interactions", partitions=6, replicas=3, config=durable)
    dlq = topics.create("dlq", partitions=1, replicas=3, config=durable)
    crm.set_faults(latency_ms_min=5.0, latency_ms_max=20.0)
    consumers = ConsumerGroup(
        bootstrap=bootstrap, topic=topic, dlq=dlq, group_id=group_id, crm=crm, run_dir=run_dir
    )
    events = interleaved_events(customers=100, total=2000, seed=9)
    first, second = events[:1000], events[1000:]
    produce(bootstrap, topic, first)
    try:
        consumers.start()
        eventually_sync(lambda: len(crm.applied()) >= 300, timeout=60)
        kafka_cluster3.stop_node(1, kill=True)  # SIGKILL: no controlled shutdown
        try:
            produce(bootstrap, topic, second)  # acks=all with 2 of 3 in sync
            eventually_sync(lambda: len(crm.applied()) >= 1500, timeout=120)
        finally:
            kafka_cluster3.start_node(1)
        eventually_sync(lambda: len(crm.applied()) >= len(events), timeout=120)
    finally:
        codes = consumers.stop_all()
    assert codes == dict.fromkeys(codes, 0)

    assert crm.event_ids_by_customer() == ids_by_customer(events)
    assert read_all(bootstrap, dlq) == []
