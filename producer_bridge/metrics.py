"""Prometheus metrics of one bridge process (a registry per app, so tests can run several)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Produce latency is dominated by linger.ms + one replicated round trip: single-digit ms on a LAN,
# tens when the cluster is busy, seconds only when something is wrong.
_PRODUCE_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


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
        self.events = Counter(
            "segstream_bridge_events",
            "Events by outcome (accepted, rejected, unavailable).",
            ["outcome"],
            registry=self.registry,
        )
        self.produce_latency = Histogram(
            "segstream_bridge_produce_latency_seconds",
            "Time from produce() to the broker's acknowledgement.",
            buckets=_PRODUCE_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "segstream_bridge_in_flight_requests",
            "Requests being handled now.",
            registry=self.registry,
        )
        self.request_bytes = Counter(
            "segstream_bridge_request_bytes", "Request body bytes read.", registry=self.registry
        )
