"""``segstream-dlq replay`` with the real consumer and CRM simulator: rejected events come back
once the CRM accepts them, the CRM converges, and a record that keeps failing is parked."""

from __future__ import annotations

import contextlib
from collections import Counter
from typing import Any

import pytest

from consumer.state import changelog_topic_name
from sandbox.records import interleaved_events, make_event, produce
from schemas.model import InteractionCompleted
from schemas.topics import (
    DLQ_HEADER_PREFIX,
    HEADER_DLQ_OFFSET,
    HEADER_PARKED_REASON,
    HEADER_REPLAY_COUNT,
)
from support.consumers import ConsumerGroup
from support.crm import CrmSimulator
from support.dlq import DlqTool, header, origin, provenance, replays
from support.kafka import read_all
from support.waiting import eventually_sync

pytestmark = pytest.mark.kafka


def crm_attributes(event: InteractionCompleted) -> dict[str, Any]:
    """What the CRM must hold for a customer whose newest event is ``event``."""
    return {
        "last_interaction_summary": event.interaction_summary,
        "sentiment": event.sentiment_score,
        "segmentation_tags": list(event.tags),
    }


def newest(events: list[InteractionCompleted]) -> dict[str, InteractionCompleted]:
    """Per customer, the newest event (completion time, then event id): every attribute is
    carried by every event here, so it decides them all."""
    result: dict[str, InteractionCompleted] = {}
    for event in events:
        current = result.get(event.customer_id)
        if current is None or (event.completed_at, event.event_id) > (
            current.completed_at,
            current.event_id,
        ):
            result[event.customer_id] = event
    return result


def dead_letters(bootstrap: str, topic: str, at_least: int) -> list[Any]:
    return eventually_sync(
        lambda: (r := read_all(bootstrap, topic)) and len(r) >= at_least and r, timeout=60
    )


def test_rejected_events_are_replayed_once_the_crm_accepts_them_and_the_crm_converges(
    kafka_bootstrap: str,
    pipeline_topics: Any,
    crm: CrmSimulator,
    group: ConsumerGroup,
    dlq: DlqTool,
) -> None:
    crm.set_faults(reject_customer_prefix="REJ-")
    rejected = [make_event(f"REJ-{n}", seq) for n in range(6) for seq in (1, 2, 3)]
    # The case that matters: this customer's first event sits in the dead-letter topic while
    # its second one is applied; the replay must not bring the first one's values back.
    late_first = make_event("REJ-LATE", 1)
    healthy = interleaved_events(customers=10, total=60)
    produce(kafka_bootstrap, pipeline_topics.events, [*rejected, late_first, *healthy])
    group.start()
    dead = dead_letters(kafka_bootstrap, pipeline_topics.dead_letters, len(rejected) + 1)
    assert len(dead) == len(rejected) + 1
    eventually_sync(lambda: len(crm.applied()) >= len(healthy), timeout=60)

    crm.set_faults(reject_customer_prefix=None)  # the cause is fixed
    late_second = make_event("REJ-LATE", 2)
    produce(kafka_bootstrap, pipeline_topics.events, [late_second])
    eventually_sync(
        lambda: (c := crm.customer("REJ-LATE")) and c["attributes"] == crm_attributes(late_second)
    )

    # The state the consumer keeps for REJ-LATE is durable in its changelog (written right
    # after the CRM's answer), so the dry run can see that the first event is superseded.
    changelog = changelog_topic_name(dlq.env["SEGSTREAM_DLQ_CONSUMER_GROUP_ID"])
    eventually_sync(
        lambda: any(m.key() == b"REJ-LATE" for m in read_all(kafka_bootstrap, changelog))
    )
    plan = dlq.run_json("replay", "--error-class", "SinkRejectedError", "--dry-run")
    assert plan["counts"]["replayed"] == len(rejected) + 1
    assert plan["counts"]["superseded"] == 1  # REJ-LATE's first event: its second one is newer
    result = dlq.run_json("replay", "--error-class", "SinkRejectedError")
    assert result["outcome"] == "ok"
    assert result["counts"]["replayed"] == len(rejected) + 1

    everything = [*rejected, late_first, late_second, *healthy]
    expected = {c: crm_attributes(e) for c, e in newest(everything).items()}

    def wrong() -> dict[str, Any]:
        """Customers whose CRM record is not the converged state, with what it holds."""
        found = {c: (crm.customer(c) or {}).get("attributes") for c in expected}
        return {c: found[c] for c in expected if found[c] != expected[c]}

    with contextlib.suppress(TimeoutError):
        eventually_sync(lambda: not wrong(), timeout=90)
    assert wrong() == {}
    # Every replay was accepted: nothing new in the dead-letter topic ...
    assert len(read_all(kafka_bootstrap, pipeline_topics.dead_letters)) == len(dead)
    # ... and every dead letter was re-published exactly once.
    events_topic = read_all(kafka_bootstrap, pipeline_topics.events)
    origins = Counter(provenance(m) for m in replays(events_topic))
    assert set(origins.values()) == {1}
    assert set(origins) == {origin(m) for m in dead}
    # The newer event stays applied: the replayed older one changed none of what both carry.
    assert crm.customer("REJ-LATE") is not None
    assert crm.customer("REJ-LATE")["attributes"] == crm_attributes(late_second)


def test_the_loop_guard_parks_a_record_that_keeps_failing(
    kafka_bootstrap: str,
    pipeline_topics: Any,
    crm: CrmSimulator,
    group: ConsumerGroup,
    dlq: DlqTool,
) -> None:
    crm.set_faults(reject_customer_prefix="REJ-")  # and it stays that way
    event = make_event("REJ-LOOP", 1)
    produce(kafka_bootstrap, pipeline_topics.events, [event])
    group.start()
    dead_letters(kafka_bootstrap, pipeline_topics.dead_letters, 1)

    for replay in (1, 2, 3):  # the default --max-replays
        result = dlq.run_json("replay", "--key", "REJ-LOOP")
        assert result["counts"]["replayed"] == 1
        dead = dead_letters(kafka_bootstrap, pipeline_topics.dead_letters, replay + 1)
        assert len(dead) == replay + 1
        again = dead[-1]
        # One context, this failure's: the replayed record in the events topic.
        names = Counter(k for k, _ in again.headers() or [])
        assert all(n == 1 for k, n in names.items() if k.startswith(DLQ_HEADER_PREFIX)), names
        assert header(again, HEADER_REPLAY_COUNT) == str(replay)
        [replayed] = [
            m
            for m in replays(read_all(kafka_bootstrap, pipeline_topics.events))
            if header(m, HEADER_REPLAY_COUNT) == str(replay)
        ]
        assert header(again, HEADER_DLQ_OFFSET) == str(replayed.offset())

    result = dlq.run_json("replay", "--key", "REJ-LOOP")
    assert result["counts"]["replayed"] == 0
    assert result["counts"]["parked_max_replays"] == 1
    [parked] = read_all(kafka_bootstrap, dlq.parked_topic)
    assert header(parked, HEADER_PARKED_REASON) == "max-replays"
    assert header(parked, HEADER_REPLAY_COUNT) == "3"
    assert parked.key() == b"REJ-LOOP"
    assert parked.value() == dead[0].value()
    assert len(replays(read_all(kafka_bootstrap, pipeline_topics.events))) == 3

    # Nothing is left to do, and nothing is done twice.
    result = dlq.run_json("replay", "--key", "REJ-LOOP")
    assert result["counts"]["selected"] == 0
    assert result["counts"]["scanned"] == 0  # the group's offset is past all four
    assert len(read_all(kafka_bootstrap, dlq.parked_topic)) == 1
    audit = dlq.audit_records()
    assert [(a["event"], a["command"], a["operator"]) for a in audit] == [
        (event, "replay", "pytest") for _ in range(5) for event in ("started", "finished")
    ]
