"""Identifiers checked at the door, against the real broker: every id that could not be a Kafka
key or an HTTP header, or that is a template's leftover, is a 422 naming the sender's field, and
nothing reaches the topic (not even the valid events of the same batch)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from schemas.model import MAX_CLOCK_SKEW_S
from support.bridge import (
    BATCH,
    EVENTS,
    BridgeUnderTest,
    acw_event,
    architect,
    assert_problem,
    serve_bridge,
)
from support.kafka import TopicFactory

pytestmark = pytest.mark.kafka


def in_the_future() -> str:
    return (datetime.now(UTC) + timedelta(seconds=MAX_CLOCK_SKEW_S + 60)).isoformat()


def customer_end(**body: Any) -> dict[str, Any]:
    event = acw_event(**body)
    topic = event["detail-type"].replace(".acw", ".customer.end")
    event["detail-type"] = event["detail"]["topicName"] = topic
    return event


# (the document, the field the 422 must name)
EXAMPLES: dict[str, tuple[Callable[[], Any], str]] = {
    # The examples: a header injection that made the consumer exit on every retry, and
    # a data action's unresolved input that created a CRM customer named "${input.customerId}".
    "idempotency-key-with-crlf": (
        lambda: architect(idempotency_key="k-1\r\nX-A: 1"),
        "idempotency_key",
    ),
    "customer-id-placeholder": (lambda: architect("${input.customerId}"), "customerId"),
    "contact-id-quiet-placeholder-in-a-macro": (
        lambda: architect(contactId="$esc.jsonString($!input.contactId)"),
        "contactId",
    ),
    "customer-id-mustache": (lambda: architect("{{customerId}}"), "customerId"),
    "customer-id-not-set": (lambda: architect("NOT_SET"), "customerId"),
    "customer-id-nul": (lambda: architect("C-1\x00"), "customerId"),
    "event-id-line-separator": (lambda: architect(idempotency_key="k\u2028-1"), "idempotency_key"),
    "event-id-too-long": (lambda: architect(idempotency_key="k" * 201), "idempotency_key"),
    "contact-id-too-long": (lambda: architect(contactId="c" * 129), "contactId"),
    "agent-id-placeholder": (lambda: architect(agentId="${input.agentId}"), "agentId"),
    "external-contact-placeholder": (
        lambda: customer_end(externalContactId="<externalContactId>"),
        "detail.eventBody.externalContactId",
    ),
    "listed-external-contact-with-tab": (
        lambda: acw_event(conversationExternalContactIds=["C\t1"]),
        "detail.eventBody.conversationExternalContactIds.0",
    ),
    "conversation-id-too-long": (
        lambda: acw_event(conversationId="c" * 65),
        "detail.eventBody.conversationId",
    ),
    "end-time-in-the-future": (lambda: architect(endTime=in_the_future()), "endTime"),
    "event-time-in-the-future": (
        lambda: acw_event(eventTime=in_the_future()),
        "detail.eventBody.eventTime",
    ),
}


@pytest.fixture
async def bridge(kafka_bootstrap: str, topics: TopicFactory) -> AsyncIterator[BridgeUnderTest]:
    async with serve_bridge(kafka_bootstrap, topics.create("identifiers")) as served:
        yield served


@pytest.mark.parametrize(("make", "field"), EXAMPLES.values(), ids=EXAMPLES.keys())
async def test_an_unusable_id_or_time_gets_422_naming_the_field_and_stores_nothing(
    bridge: BridgeUnderTest, make: Callable[[], Any], field: str
) -> None:
    single = assert_problem(await bridge.post(EVENTS, make()), 422)
    assert [error["field"] for error in single["errors"]] == [field]

    batch = assert_problem(await bridge.post(BATCH, [architect(), make(), acw_event()]), 422)
    assert batch["invalid_indexes"] == [1]
    assert [(error["index"], error["field"]) for error in batch["errors"]] == [(1, field)]
    assert bridge.records() == []


async def test_ids_at_their_bounds_are_stored(bridge: BridgeUnderTest) -> None:
    longest = architect("c" * 256, contactId="k" * 128, idempotency_key="e" * 200)
    platform = acw_event(conversationId="v" * 64, participantId="p" * 64)
    answer = await bridge.post(BATCH, [longest, platform])
    assert answer.status == 202, answer.body
    assert {record.key() for record in bridge.records()} == {b"c" * 256, b"ext-555"}
