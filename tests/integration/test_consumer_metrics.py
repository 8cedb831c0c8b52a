"""What the on-call engineer reads: counts by outcome, ages, lag per partition, no customer ids."""

from __future__ import annotations

import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from sandbox.records import interleaved_events, make_event, produce, produce_raw
from support.consumers import ConsumerGroup
from support.crm import CrmSimulator
from support.metrics import metric, sample
from support.waiting import eventually_sync

pytestmark = pytest.mark.kafka


def test_metrics_count_outcomes_and_never_name_a_customer(
    kafka_bootstrap: str, pipeline_topics, crm: CrmSimulator, group: ConsumerGroup
) -> None:
    events = interleaved_events(customers=15, total=60)
    produce(kafka_bootstrap, pipeline_topics.events, events)
    produce(kafka_bootstrap, pipeline_topics.events, [events[0]])  # a duplicate
    produce_raw(kafka_bootstrap, pipeline_topics.events, b"C-bad", b"garbage", [])
    produce(kafka_bootstrap, pipeline_topics.events, [make_event("C-last", 1)])
    group.start()
    url = group.metrics_urls[0]

    eventually_sync(
        lambda: metric(url, "segstream_consumer_records_total", outcome="written") == 61, timeout=60
    )
    assert metric(url, "segstream_consumer_records_total", outcome="duplicate") == 1
    assert metric(url, "segstream_consumer_dedupe_hits_total") == 1
    assert metric(url, "segstream_consumer_records_total", outcome="dead_lettered") == 1
    assert (
        metric(
            url, "segstream_consumer_dead_letters_total", stage="decode", reason="EventDecodeError"
        )
        == 1
    )
    assert metric(url, "segstream_consumer_event_age_seconds_count") == 61
    assert metric(url, "segstream_consumer_assigned_partitions") == 12

    def lags() -> list[float | None]:
        return [
            sample(
                url,
                "segstream_consumer_lag_records",
                topic=pipeline_topics.events,
                partition=str(p),
            )
            for p in range(12)
        ]

    # Lag comes from librdkafka's statistics (every second in tests): 0 everywhere once read.
    eventually_sync(lambda: lags() == [0.0] * 12, timeout=30)

    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
        page = response.read().decode()
    customers = {e.customer_id for e in events} | {"C-bad", "C-last"}
    label_values = {
        value
        for family in text_string_to_metric_families(page)
        for found in family.samples
        for value in found.labels.values()
    }
    assert not label_values & customers
    assert not any(c in page for c in customers)
