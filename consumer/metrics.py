"""Prometheus metrics of one consumer process. Never a customer id (or any key) as a label."""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass, field
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# CRM calls: tens of ms when healthy, the 5 s timeout when not; buckets resolve both ends.
_SINK_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# End-to-end age (interaction completed -> CRM written): the goal is under a second, a backlog
# shows up as minutes, a replay from the dead-letter topic as hours.
_AGE_BUCKETS: Final = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0, 86400.0)
_WAIT_BUCKETS: Final = (0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_log = logging.getLogger(__name__)


@dataclass
class ConsumerMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.records = Counter(
            "segstream_consumer_records",
            "Records finished, by outcome: written; duplicate (event id seen within the dedupe "
            "TTL, or every attribute already holds this event's value); stale (no attribute "
            "moves forward); expired (older than the state horizon); dead_lettered.",
            ["outcome"],
            registry=r,
        )
        self.sink_latency = Histogram(
            "segstream_consumer_sink_latency_seconds",
            "One sink write (CRM: update, with create on 404), by result.",
            ["result"],
            buckets=_SINK_BUCKETS,
            registry=r,
        )
        self.event_age = Histogram(
            "segstream_consumer_event_age_seconds",
            "From the interaction's completion to its effect in the sink.",
            buckets=_AGE_BUCKETS,
            registry=r,
        )
        self.sink_errors = Counter(
            "segstream_consumer_sink_errors",
            "Failed sink writes by kind (rejected, unavailable, unusable) and HTTP status.",
            ["kind", "status"],
            registry=r,
        )
        self.retries = Counter(
            "segstream_consumer_sink_retries",
            "Sink writes retried after a transient error.",
            registry=r,
        )
        self.dead_letters = Counter(
            "segstream_consumer_dead_letters",
            "Records sent to the dead-letter topic, by stage and error class.",
            ["stage", "reason"],
            registry=r,
        )
        self.dedupe_hits = Counter(
            "segstream_consumer_dedupe_hits",
            "Records skipped because their event id was finished within the TTL.",
            registry=r,
        )
        self.limiter_wait = Histogram(
            "segstream_consumer_limiter_wait_seconds",
            "Time a write waited for the token bucket (including Retry-After pauses).",
            buckets=_WAIT_BUCKETS,
            registry=r,
        )
        self.limiter_rate = Gauge(
            "segstream_consumer_limiter_rate_per_second",
            "This instance's current CRM request rate (its share of the group's, after AIMD).",
            registry=r,
        )
        self.throttled = Counter(
            "segstream_consumer_throttled", "429 answers from the sink.", registry=r
        )
        self.circuit_open = Gauge(
            "segstream_consumer_circuit_open",
            "1 while the sink is considered unusable and consumption is paused.",
            registry=r,
        )
        self.in_flight_records = Gauge(
            "segstream_consumer_in_flight_records",
            "Records fetched and not yet finished.",
            registry=r,
        )
        self.paused = Gauge(
            "segstream_consumer_paused_partitions",
            "Assigned partitions currently paused.",
            registry=r,
        )
        self.assigned = Gauge(
            "segstream_consumer_assigned_partitions",
            "Partitions assigned to this instance.",
            registry=r,
        )
        self.rebalancing = Gauge(
            "segstream_consumer_group_rebalancing",
            "1 while this member is in a rebalance (librdkafka's consumer-group join state is "
            "not steady), from the client's statistics.",
            registry=r,
        )
        self.rebalances = Counter(
            "segstream_consumer_rebalances",
            "Rebalance callbacks by kind (assign, revoke, lost).",
            ["kind"],
            registry=r,
        )
        for kind in ("assign", "revoke", "lost"):
            # Present at 0 from the start: "no rebalance" is a sample, not a missing series
            # (rate() and alerts, and tests, cannot tell a missing series from a zero).
            self.rebalances.labels(kind)
        self.held_partitions = Gauge(
            "segstream_consumer_held_partitions",
            "Partitions held because a record's writer schema is unknown here (a newer producer, "
            "or a schema registry that does not answer).",
            registry=r,
        )
        self.state_customers = Gauge(
            "segstream_consumer_state_customers",
            "Customers whose attribute versions this instance holds in memory.",
            registry=r,
        )
        self.state_restore_seconds = Histogram(
            "segstream_consumer_state_restore_seconds",
            "Time to read one partition's customer state back from its changelog on assignment.",
            buckets=_WAIT_BUCKETS,
            registry=r,
        )
        self.lag = Gauge(
            "segstream_consumer_lag_records",
            "Records behind the high watermark, per partition (from librdkafka statistics).",
            ["topic", "partition"],
            registry=r,
        )

    # EngineObserver ------------------------------------------------------------------------

    def in_flight(self, count: int) -> None:
        self.in_flight_records.set(count)

    def paused_partitions(self, count: int) -> None:
        self.paused.set(count)

    def rebalance(self, kind: str, partitions: int) -> None:
        self.rebalances.labels(kind).inc()

    def kafka_stats(self, stats_json: str) -> None:
        """librdkafka's statistics callback (its STATISTICS.md): per-partition lag of the
        partitions we consume, and whether the member is in a rebalance (``cgrp.join_state``)."""
        try:
            stats = json.loads(stats_json)
            join_state = stats.get("cgrp", {}).get("join_state")
            if join_state is not None:
                self.rebalancing.set(0 if join_state == "steady" else 1)
            for topic, topic_stats in stats.get("topics", {}).items():
                for number, partition in topic_stats.get("partitions", {}).items():
                    if number == "-1" or partition.get("fetch_state") != "active":
                        continue
                    lag = partition.get("consumer_lag", -1)
                    high = partition.get("hi_offset", -1)
                    if lag < 0 and high >= 0 and high == partition.get("lo_offset"):
                        lag = 0  # an empty partition: librdkafka says "unknown", it is nothing
                    if lag >= 0:
                        self.lag.labels(topic, number).set(lag)
        except (ValueError, AttributeError, TypeError):
            _log.debug("unreadable librdkafka statistics")

    def forget_partition(self, topic: str, partition: int) -> None:
        with contextlib.suppress(KeyError):
            self.lag.remove(topic, str(partition))
