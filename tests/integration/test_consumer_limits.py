"""The group-wide token bucket: the group stays under the CRM's limit and close to its own."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

import pytest

from sandbox.records import interleaved_events, produce
from support.consumers import ConsumerGroup
from support.crm import CrmSimulator
from support.metrics import metric
from support.waiting import eventually_sync

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


@pytest.fixture
def crm_settings() -> dict[str, Any]:
    # Customers exist on first write, so every event is exactly one CRM call and the rate
    # measured is the rate of updates.
    return {"auto_create": "true"}


def instant(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@pytest.mark.serial  # a write rate: measured on a machine not shared with other tests
def test_three_instances_share_the_group_limit(
    kafka_bootstrap: str, pipeline_topics, crm: CrmSimulator, group: ConsumerGroup
) -> None:
    # The CRM's bucket holds 200 ms of its rate. A smaller one turns every scheduling stall of
    # the simulator itself (one Python process on a shared 2-core CI machine: 100-200 ms stalls
    # are routine) into a clump of 429s that says nothing about the consumers' pacing.
    crm.set_faults(rate_limit_per_s=210.0, rate_limit_burst=42)
    for _ in range(3):
        group.start(crm_rate_limit_per_s=200, crm_rate_burst=10)
    # The group settles first (12 partitions, 4 each), so what is measured is the steady state,
    # not the start-up rebalances.
    eventually_sync(
        lambda: (
            [metric(url, "segstream_consumer_assigned_partitions") for url in group.metrics_urls]
            == [4.0, 4.0, 4.0]
        ),
        timeout=60,
    )
    events = interleaved_events(customers=1000, total=3000, seed=11)
    produce(kafka_bootstrap, pipeline_topics.events, events)
    eventually_sync(lambda: len(crm.applied()) >= len(events), timeout=120)

    requests = [r for r in crm.requests() if r["path"] == "/v1/customers/update"]
    # From the 5th to the 90th percentile of the run: the tail is the instances running out of
    # work one after the other, which no limiter can avoid.
    times = sorted(instant(w["received_at"]) for w in crm.applied())
    low, high = times[len(times) // 20], times[len(times) * 9 // 10]
    rate = (len(times) * 17 // 20) / (high - low)
    throttled = sum(1 for r in requests if r["status"] == 429)
    per_second = Counter(int(t - times[0]) for t in times)
    first429 = next((instant(r["received_at"]) for r in requests if r["status"] == 429), None)
    if first429 is not None:
        around = [
            instant(r["received_at"])
            for r in requests
            if first429 - 2 <= instant(r["received_at"]) <= first429 + 0.5
        ]
        buckets = Counter(int((t - first429 + 2) * 10) for t in around)
        print("per 100 ms before/after the first 429:", [buckets[b] for b in range(25)])
    print(
        f"group write rate {rate:.1f}/s, 429s {throttled}/{len(requests)}; per second: "
        f"{[per_second[s] for s in sorted(per_second)]}"
    )
    # The group shares one limit: never above it (the CRM's 429s are the judge), and not a
    # fraction of it either (a limit split three ways too many times would give <= 67/s). How
    # close to the limit the group gets is a figure, not a pass/fail line: `make
    # bench-ratelimit` measures it against an unlimited group (1.000 of 200/s, no 429, in
    # docs/PERFORMANCE.md); on a loaded 2-core CI machine this test saw 130-198/s.
    assert rate >= 120
    assert throttled <= 0.005 * len(requests)


def test_no_call_before_the_retry_after_instant(
    kafka_bootstrap: str, pipeline_topics, crm: CrmSimulator, group: ConsumerGroup
) -> None:
    # The CRM allows far less than the consumer would send: 429s are certain.
    crm.set_faults(rate_limit_per_s=5.0, rate_limit_burst=1)
    events = interleaved_events(customers=50, total=60, seed=3)
    produce(kafka_bootstrap, pipeline_topics.events, events)
    group.start(crm_rate_limit_per_s=100, crm_rate_burst=10)
    eventually_sync(lambda: len(crm.applied()) >= len(events), timeout=120)

    requests = crm.requests()
    throttles = [r for r in requests if r["status"] == 429]
    assert throttles, "the CRM never throttled; the test proves nothing"
    for throttle in throttles:
        answered = instant(throttle["answered_at"])
        not_before = answered + throttle["retry_after_ms"] / 1000
        # Requests already on the wire when the 429 left the CRM are not a violation; 50 ms is
        # far more than loopback needs to deliver the answer to the consumer.
        too_early = [
            r for r in requests if answered + 0.05 < instant(r["received_at"]) < not_before - 0.002
        ]
        assert too_early == [], f"called during a Retry-After pause: {throttle} then {too_early[0]}"
