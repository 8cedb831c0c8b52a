"""SIGTERM in the middle of a rebalance that waits for a vanished member: librdkafka's final
commit and ``close()`` wait for the group's JoinGroup round, which the broker holds until that
member's session times out. The consumer must still exit within its bound
(``SHUTDOWN_DRAIN_S + CLOSE_TIMEOUT_S``), saying why, and the records stay whole."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from consumer.shutdown import EXIT_SHUTDOWN_TIMEOUT
from sandbox.records import ids_by_customer, interleaved_events, produce
from support.consumers import ConsumerGroup
from support.crm import CrmSimulator
from support.metrics import sample
from support.waiting import eventually_sync

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

# A plain member of the group: joins, polls, says what it owns. Its long session makes the
# broker wait for it, once it is frozen, for the whole test.
MEMBER = """
import sys
from confluent_kafka import Consumer
consumer = Consumer({
    "bootstrap.servers": sys.argv[1], "group.id": sys.argv[2],
    "partition.assignment.strategy": "cooperative-sticky",
    "session.timeout.ms": 120000, "max.poll.interval.ms": 300000,
    "enable.auto.commit": False,
})
consumer.subscribe([sys.argv[3]])
while True:
    consumer.poll(0.2)
    print(len(consumer.assignment()), flush=True)
"""


@contextmanager
def member(bootstrap: str, group_id: str, topic: str) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-c", MEMBER, bootstrap, group_id, topic],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        yield process
    finally:
        process.kill()  # SIGKILL also ends a stopped process
        process.wait()
        if process.stdout is not None:
            process.stdout.close()


def owns_partitions(process: subprocess.Popen[str]) -> bool:
    assert process.stdout is not None
    return int(process.stdout.readline() or 0) > 0


def rebalancing(metrics_url: str) -> float | None:
    return sample(metrics_url, "segstream_consumer_group_rebalancing")


def test_a_sigterm_during_a_rebalance_held_by_a_vanished_member_exits_within_the_bound(
    kafka_bootstrap: str, pipeline_topics, crm: CrmSimulator, group: ConsumerGroup
) -> None:
    events = interleaved_events(customers=20, total=200, seed=4)
    produce(kafka_bootstrap, pipeline_topics.events, events)
    ours = group.start(shutdown_drain_s=1, close_timeout_s=3)
    eventually_sync(lambda: len(crm.applied()) >= len(events), timeout=60)

    topic, metrics = pipeline_topics.events, group.metrics_urls[0]
    with member(kafka_bootstrap, group.group_id, topic) as vanished:
        eventually_sync(lambda: owns_partitions(vanished), timeout=60)
        vanished.send_signal(signal.SIGSTOP)  # frozen with its partitions, session still valid
        eventually_sync(lambda: rebalancing(metrics) == 0, timeout=60)  # that round is over
        with member(kafka_bootstrap, group.group_id, topic):
            # The newcomer's JoinGroup starts a round that waits for the frozen member: ours
            # rejoins, and its commit and close now wait for the round's end (two minutes).
            eventually_sync(lambda: rebalancing(metrics) == 1, timeout=60)
            started = time.monotonic()
            ours.process.send_signal(signal.SIGTERM)
            code = ours.process.wait(30)
            took = time.monotonic() - started

    assert code == EXIT_SHUTDOWN_TIMEOUT
    assert took < 1 + 3 + 3  # the bound, and a few seconds for a busy machine
    assert "did not stop within 4 s of SIGTERM" in ours.log_text()
    ours.stop()  # already exited: the group fixture expects the others to exit 0
    group.instances.remove(ours)
    # Nothing was lost on the way: every event's effect is in the CRM, in order.
    assert crm.event_ids_by_customer() == ids_by_customer(events)
