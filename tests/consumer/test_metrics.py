"""What the consumer reads off librdkafka's statistics (its STATISTICS.md): the member's
rebalance state, from ``cgrp.join_state``."""

from __future__ import annotations

import json

import pytest

from consumer.metrics import ConsumerMetrics


def rebalancing(metrics: ConsumerMetrics) -> float | None:
    return metrics.registry.get_sample_value("segstream_consumer_group_rebalancing")


@pytest.mark.parametrize(
    ("join_state", "expected"),
    [
        ("steady", 0),
        ("init", 1),
        ("wait-join", 1),
        ("wait-sync", 1),
        ("wait-unassign-call", 1),
        ("wait-incr-unassign-to-complete", 1),
    ],
)
def test_a_member_not_steady_is_rebalancing(join_state: str, expected: int) -> None:
    metrics = ConsumerMetrics()
    metrics.kafka_stats(json.dumps({"cgrp": {"state": "up", "join_state": join_state}}))
    assert rebalancing(metrics) == expected


def test_statistics_without_a_group_leave_the_gauge_alone() -> None:
    metrics = ConsumerMetrics()
    metrics.kafka_stats(json.dumps({"cgrp": {"join_state": "wait-join"}}))
    metrics.kafka_stats(json.dumps({"topics": {}}))
    assert rebalancing(metrics) == 1
