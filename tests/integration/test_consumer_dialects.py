"""CRM dialects against the real consumer and the real simulator process, through a real broker:
every event's effect in the CRM, in order per customer, and an empty dead-letter topic."""

from __future__ import annotations

from datetime import datetime

import pytest

from sandbox.records import ids_by_customer, interleaved_events, make_event, produce
from support.consumers import ConsumerGroup
from support.crm import CrmSimulator
from support.kafka import read_all
from support.metrics import metric
from support.waiting import eventually_sync

pytestmark = pytest.mark.kafka


def all_applied(crm: CrmSimulator, events: list) -> bool:  # type: ignore[type-arg]
    return {e.event_id for e in events} <= set(crm.applied_event_ids())


def assert_every_effect(crm: CrmSimulator, events: list, bootstrap: str, dlq: str) -> None:  # type: ignore[type-arg]
    assert crm.event_ids_by_customer() == ids_by_customer(events)
    for customer_id, ids in ids_by_customer(events).items():
        record = crm.customer(customer_id)
        assert record is not None
        last = next(e for e in events if e.event_id == ids[-1])
        assert record["attributes"]["last_interaction_summary"] == last.interaction_summary
    assert read_all(bootstrap, dlq) == []


@pytest.mark.parametrize("mode", ["executed", "successes"])
def test_new_customers_in_both_idempotency_dialects(
    kafka_bootstrap: str, pipeline_topics, crm: CrmSimulator, group: ConsumerGroup, mode: str
) -> None:
    crm.set_faults(idempotency_results=mode)
    events = interleaved_events(customers=30, total=150)
    produce(kafka_bootstrap, pipeline_topics.events, events)
    group.start()
    eventually_sync(lambda: all_applied(crm, events), timeout=90)
    assert_every_effect(crm, events, kafka_bootstrap, pipeline_topics.dead_letters)
    # Every customer was created once, with its first event's attributes, never created twice.
    creates = [w for w in crm.writes() if w["operation"] == "create"]
    assert sorted(w["customer_id"] for w in creates) == sorted(ids_by_customer(events))


def test_a_key_still_in_use_is_retried_until_its_first_attempt_finishes(
    kafka_bootstrap: str, pipeline_topics, crm: CrmSimulator, group: ConsumerGroup
) -> None:
    # Updates of SLOW- customers take 2.5 s; the consumer gives up on a request after 1 s and
    # retries with the same key while the first attempt still executes: 409, back off, retry.
    crm.set_faults(slow_customer_prefix="SLOW-", slow_customer_ms=2500.0)
    events = [make_event(f"SLOW-{n}", seq) for seq in (1, 2) for n in range(3)]
    events += interleaved_events(customers=10, total=40)
    produce(kafka_bootstrap, pipeline_topics.events, events)
    group.start(crm_timeout_s=1)
    eventually_sync(lambda: all_applied(crm, events), timeout=120)
    assert_every_effect(crm, events, kafka_bootstrap, pipeline_topics.dead_letters)
    in_use = [r for r in crm.requests() if r["status"] == 409]
    assert in_use, "the key-in-use path was not exercised"
    assert all(r["path"] == "/v1/customers/update" for r in in_use)


def _ms(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp() * 1000.0


def test_retry_after_as_an_http_date_is_honoured(
    kafka_bootstrap: str, pipeline_topics, crm: CrmSimulator, group: ConsumerGroup
) -> None:
    customers = [f"C-date-{n}" for n in range(6)]
    for customer_id in customers:
        crm.create_customer(customer_id)
    crm.set_faults(retry_after_format="http-date", rate_limit_per_s=0.5, rate_limit_burst=1)
    events = [make_event(customer_id, 1) for customer_id in customers]
    produce(kafka_bootstrap, pipeline_topics.events, events)
    # One request at a time, and the consumer's own limit far above the CRM's.
    group.start(crm_max_connections=1, crm_rate_limit_per_s=100)
    eventually_sync(lambda: all_applied(crm, events), timeout=90)
    assert_every_effect(crm, events, kafka_bootstrap, pipeline_topics.dead_letters)

    answered = [r for r in crm.requests() if r["path"].startswith("/v1")]
    throttled = [(n, r) for n, r in enumerate(answered) if r["status"] == 429]
    assert throttled, "the CRM never throttled: the test proves nothing"
    for n, answer in throttled:
        assert answer["retry_after_ms"] >= 1000  # an HTTP-date, whole seconds ahead
        resume_at = _ms(answer["answered_at"]) + answer["retry_after_ms"]
        if n + 1 < len(answered):
            # Not one request before the date (10 ms for the log's millisecond rounding).
            assert _ms(answered[n + 1]["received_at"]) >= resume_at - 10, (answer, answered[n + 1])


@pytest.mark.serial  # the CRM's bucket holds 200 ms: a stall of a loaded machine is a clump of 429s
@pytest.mark.parametrize("dialect", ["ratelimit", "x-ratelimit-delta", "x-ratelimit-epoch", "none"])
def test_rate_limit_headers_pace_the_consumer_before_any_429(
    kafka_bootstrap: str,
    pipeline_topics,
    crm: CrmSimulator,
    group: ConsumerGroup,
    dialect: str,
) -> None:
    # The CRM takes 25 requests/s; the group is configured for 400/s.
    crm.set_faults(rate_limit_per_s=25, rate_limit_burst=5, rate_limit_headers=dialect)
    events = interleaved_events(customers=40, total=100, seed=11)
    produce(kafka_bootstrap, pipeline_topics.events, events)
    group.start(crm_rate_limit_per_s=400, crm_rate_burst=20)
    eventually_sync(lambda: all_applied(crm, events), timeout=120)
    assert_every_effect(crm, events, kafka_bootstrap, pipeline_topics.dead_letters)
    answered = crm.requests()
    # Before its first answer the consumer knows nothing of the CRM's limit: its first burst
    # (up to the configured 20, which may reach the CRM in pieces as partitions are fetched)
    # may meet the CRM's bucket of 5. From 100 ms after that answer, the headers pace it.
    learned = min(_ms(r["answered_at"]) for r in answered) + 100
    later = [r["status"] for r in answered if _ms(r["received_at"]) > learned]
    throttled = later.count(429)
    when = [round(_ms(r["received_at"]) - learned) for r in answered if r["status"] == 429]
    if dialect == "none":
        # Without headers the consumer learns the limit only from 429s (AIMD): the contrast
        # (measured: 273 of ~500 requests after the first 200 ms with 200 events).
        assert throttled > 20, (throttled, len(later))
    else:
        assert throttled <= 3, f"{throttled} of {len(later)}; 429s at (ms after learning) {when}"


def test_a_moved_crm_opens_the_circuit_and_dead_letters_nothing(
    kafka_bootstrap: str, pipeline_topics, crm: CrmSimulator, group: ConsumerGroup
) -> None:
    crm.set_faults(redirect_status=301)
    events = interleaved_events(customers=10, total=40)
    produce(kafka_bootstrap, pipeline_topics.events, events)
    group.start()
    url = group.metrics_urls[0]
    eventually_sync(lambda: metric(url, "segstream_consumer_circuit_open") == 1, timeout=30)
    assert crm.applied() == []
    assert read_all(kafka_bootstrap, pipeline_topics.dead_letters) == []
    assert {r["status"] for r in crm.requests()} == {301}

    crm.set_faults(redirect_status=None)  # the operator fixed the address
    eventually_sync(lambda: all_applied(crm, events), timeout=90)
    assert_every_effect(crm, events, kafka_bootstrap, pipeline_topics.dead_letters)
