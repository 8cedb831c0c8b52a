"""Prometheus metrics of one bridge process (a registry per app, so tests can run several).

No label ever carries a customer id, event id or anything else unbounded: routes are the
application's route templates (``unmatched`` for everything else), sources and outcomes are
fixed sets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Produce latency is dominated by linger.ms + one replicated round trip: single-digit ms on a LAN,
# tens when the cluster is busy, seconds only when something is wrong.
_PRODUCE_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_REQUEST_BUCKETS = (0.001, *_PRODUCE_BUCKETS)


@dataclass
class BridgeMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.requests = Counter(
            "segstream_bridge_requests",
            "HTTP requests by route and status.",
            ["route", "status"],
            registry=self.registry,
        )
        self.request_duration = Histogram(
            "segstream_bridge_request_duration_seconds",
            "Time from the request's arrival to its answer, by route.",
            ["route"],
            buckets=_REQUEST_BUCKETS,
            registry=self.registry,
        )
        self.request_bytes = Counter(
            "segstream_bridge_request_bytes",
            "Request body bytes read, by route.",
            ["route"],
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "segstream_bridge_in_flight_requests",
            "Requests being handled now.",
            registry=self.registry,
        )
        self.events = Counter(
            "segstream_bridge_events",
            "Events by input shape and outcome (accepted, rejected, unavailable).",
            ["source", "outcome"],
            registry=self.registry,
        )
        self.unresolved_fields = Counter(
            "segstream_bridge_unresolved_fields",
            "Stored events' fields that held an unresolved template placeholder (a flow "
            "variable with no value), read as not carried, by input shape and field.",
            ["source", "field"],
            registry=self.registry,
        )
        self.produce_latency = Histogram(
            "segstream_bridge_produce_latency_seconds",
            "Time from produce() to the broker's acknowledgement of a request's records.",
            buckets=_PRODUCE_BUCKETS,
            registry=self.registry,
        )
        self.producer_queue = Gauge(
            "segstream_bridge_producer_queued_records",
            "Records handed to the Kafka producer and not yet acknowledged.",
            registry=self.registry,
        )

    def watch_producer_queue(self, queued: Callable[[], int]) -> None:
        self.producer_queue.set_function(queued)
