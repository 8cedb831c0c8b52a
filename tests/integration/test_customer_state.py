"""Customer state that converges, end to end: webhooks through the real bridge and broker into
real consumer processes and the CRM simulator, across a restart and a partition move."""

from __future__ import annotations

from typing import Any

import pytest

from support.bridge import EVENTS, serve_bridge
from support.consumers import ConsumerGroup
from support.crm import CrmSimulator
from support.kafka import read_all
from support.metrics import metric
from support.services import ServiceProcess
from support.waiting import eventually, eventually_sync

pytestmark = pytest.mark.kafka

CUSTOMER = "C-2002"
ARCHITECT = {
    "customerId": CUSTOMER,
    "contactId": "c-arch-1",
    "channel": "voice",
    "startTime": "2026-11-28T10:15:00Z",
    "endTime": "2026-11-28T10:21:40Z",
    "interactionSummary": "upsell-offered",
    "sentimentScore": 0.6,
    "tags": ["upsell_opportunity"],
    "idempotency_key": "arch-1",
}
ACW_TOPIC = "v2.detail.events.conversation.conv-1.acw"
ACW = {
    "detail-type": ACW_TOPIC,
    "detail": {
        "topicName": ACW_TOPIC,
        "eventBody": {
            "eventTime": "2026-11-28T10:30:00Z",
            "conversationId": "conv-1",
            "participantId": "part-1",
            "mediaType": "VOICE",
            "wrapupCode": "callback-requested",
            "conversationExternalContactIds": [CUSTOMER],
        },
    },
}
CONVERGED = {
    "last_interaction_summary": "callback-requested",
    "sentiment": 0.6,
    "segmentation_tags": ["upsell_opportunity"],
}


def a_day_late(number: int) -> dict[str, Any]:
    """An Architect event completed a day before the applied ones, carrying every attribute:
    a sender retry or an event-bridge redelivery that arrives a day late."""
    return {
        **ARCHITECT,
        "contactId": f"c-late-{number}",
        "startTime": "2026-11-27T10:15:00Z",
        "endTime": "2026-11-27T10:21:40Z",
        "interactionSummary": f"late-{number}",
        "sentimentScore": -0.9,
        "tags": [],
        "idempotency_key": f"late-{number}",
    }


async def test_a_platform_event_keeps_what_it_does_not_carry_and_a_late_event_changes_nothing(
    kafka_bootstrap: str, pipeline_topics: Any, crm: CrmSimulator, group: ConsumerGroup
) -> None:
    async with serve_bridge(kafka_bootstrap, pipeline_topics.events) as bridge:
        first = group.start()
        assert (await bridge.post(EVENTS, ARCHITECT)).status == 202
        assert (await bridge.post(EVENTS, ACW)).status == 202

        async def converged() -> dict[str, Any] | None:
            record = crm.customer(CUSTOMER)
            return record if record and record["attributes"] == CONVERGED else None

        record = await eventually(converged, timeout=30)
        assert record["last_updated"] == "2026-11-28T10:30:00.000Z"

        async def late_event_skipped(number: int, instance: ServiceProcess) -> None:
            url = group.metrics_urls[group.instances.index(instance)]
            assert (await bridge.post(EVENTS, a_day_late(number))).status == 202
            eventually_sync(
                lambda: metric(url, "segstream_consumer_records_total", outcome="stale") == 1,
                timeout=60,
            )
            assert crm.customer(CUSTOMER) == record  # not even the version moved
            keys = [r["idempotency_key"] or "" for r in crm.requests()]
            assert not [k for k in keys if k.startswith(f"late-{number}")], "the CRM was called"

        await late_event_skipped(1, first)

        # A restart: the state comes back from its changelog topic.
        assert first.stop() == 0
        second = group.start()
        await late_event_skipped(2, second)

        # The partition moves to another instance, which restores the state on assignment.
        third = group.start()
        assert second.stop() == 0
        await late_event_skipped(3, third)

    assert read_all(kafka_bootstrap, pipeline_topics.dead_letters) == []


async def test_a_flow_variable_with_no_value_changes_nothing_it_stood_for(
    kafka_bootstrap: str, pipeline_topics: Any, crm: CrmSimulator, group: ConsumerGroup
) -> None:
    # A data action's Velocity template renders a null input as its own text: the summary and
    # one tag arrive as placeholders. They mean "no value": the CRM keeps the newest real
    # summary, gets the tags that had values, and never sees a placeholder.
    newer = {
        **ARCHITECT,
        "contactId": "c-arch-2",
        "startTime": "2026-11-28T11:00:00Z",
        "endTime": "2026-11-28T11:05:00Z",
        "interactionSummary": "${input.interactionSummary}",
        "sentimentScore": 0.2,
        "tags": ["$!{input.tag1}", "vip"],
        "idempotency_key": "arch-2",
    }
    newest = {
        **newer,
        "contactId": "c-arch-3",
        "endTime": "2026-11-28T11:10:00Z",
        "interactionSummary": "$esc.jsonString($!input.interactionSummary)",
        "sentimentScore": -0.1,
        "tags": ["NOT_SET"],  # its only tag variable had no value: not a clear
        "idempotency_key": "arch-3",
    }
    async with serve_bridge(kafka_bootstrap, pipeline_topics.events) as bridge:
        group.start()
        for event in (ARCHITECT, newer, newest):
            assert (await bridge.post(EVENTS, event)).status == 202

        expected = {
            "last_interaction_summary": "upsell-offered",
            "sentiment": -0.1,
            "segmentation_tags": ["vip"],
        }

        async def converged() -> dict[str, Any] | None:
            record = crm.customer(CUSTOMER)
            return record if record and record["attributes"] == expected else None

        await eventually(converged, timeout=30)
        registry = bridge.metrics.registry
        name = "segstream_bridge_unresolved_fields_total"
        assert (
            registry.get_sample_value(name, {"source": "architect-webhook", "field": "tags"}) == 2
        )
        summaries = {"source": "architect-webhook", "field": "interactionSummary"}
        assert registry.get_sample_value(name, summaries) == 2
        assert all(b"input." not in (r.value() or b"") for r in bridge.records())

    assert read_all(kafka_bootstrap, pipeline_topics.dead_letters) == []
