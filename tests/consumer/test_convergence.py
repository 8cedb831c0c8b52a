"""The central promise, as a property: whatever the order, duplicates, replays and restarts, each of
a customer's CRM attributes ends with the value of the newest event that carried it.

The events are webhook payloads in both of the bridge's input shapes, mapped by the bridge's own
code; they go through the consumer's real record path (RecordProcessor, SinkWriter, CrmHttpSink)
into the real CRM simulator application. The expected state is computed here from the payloads
alone, by the rule as README.md states it, not with the consumer's code.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from producer_bridge.shapes import EventMapper
from sandbox.crm import CrmSimulatorSettings, create_app
from support.pipeline import MemoryChangelog, in_process_consumer, record

TOKEN = "convergence-test-token"
T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
CUSTOMERS = ["C-1", "C-2", "C-3"]
EMPTY = {"last_interaction_summary": None, "sentiment": None, "segmentation_tags": []}
NOT_SENT = object()  # a field left out of the payload, unlike one sent as null


@dataclass(frozen=True)
class Sent:
    """One webhook payload and what it carries, by the rule (not by the consumer's code)."""

    document: dict[str, Any]
    customer_id: str
    event_id: str
    completed_ms: int
    carries: dict[str, Any]


def iso(minutes: int) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def millis(minutes: int) -> int:
    return int((T0 + timedelta(minutes=minutes)).timestamp() * 1000)


@st.composite
def architect(draw: st.DrawFn, n: int) -> Sent:
    customer, minutes = draw(st.sampled_from(CUSTOMERS)), draw(st.integers(0, 6))
    summary = draw(st.sampled_from([NOT_SENT, None, "billing", "cancel", "upsell"]))
    sentiment = draw(st.sampled_from([NOT_SENT, None, -0.5, 0.0, 0.75]))
    tags = draw(st.sampled_from([[], ["vip"], ["churn_risk", "upsell_opportunity"]]))
    document: dict[str, Any] = {
        "customerId": customer,
        "contactId": f"contact-{n}",
        "channel": "voice",
        "startTime": iso(minutes),
        "endTime": iso(minutes),
        "tags": tags,
        "idempotency_key": f"arch-{n}",
    }
    carries: dict[str, Any] = {"segmentation_tags": tags}
    if summary is not NOT_SENT:
        document["interactionSummary"] = summary
        if summary is not None:
            carries["last_interaction_summary"] = summary
    if sentiment is not NOT_SENT:
        document["sentimentScore"] = sentiment
        if sentiment is not None:
            carries["sentiment"] = sentiment
    return Sent(document, customer, f"arch-{n}", millis(minutes), carries)


@st.composite
def platform(draw: st.DrawFn, n: int) -> Sent:
    customer, minutes = draw(st.sampled_from(CUSTOMERS)), draw(st.integers(0, 6))
    kind = draw(st.sampled_from(["acw", "customer.end"]))
    conversation, participant = f"conv-{n}", f"part-{n}"
    topic = f"v2.detail.events.conversation.{conversation}.{kind}"
    body: dict[str, Any] = {
        "eventTime": millis(minutes),
        "conversationId": conversation,
        "participantId": participant,
        "mediaType": "VOICE",
    }
    carries: dict[str, Any] = {}
    if kind == "acw":
        body["conversationExternalContactIds"] = [customer]
        wrapup = draw(st.sampled_from([NOT_SENT, "callback-requested", "resolved"]))
        if wrapup is not NOT_SENT:
            body["wrapupCode"] = wrapup
            carries["last_interaction_summary"] = wrapup
    else:
        body["externalContactId"] = customer
        body["disconnectType"] = "peer"
    document = {"detail-type": topic, "detail": {"topicName": topic, "eventBody": body}}
    event_id = f"{conversation}-{participant}-{kind}"
    return Sent(document, customer, event_id, millis(minutes), carries)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[Sent], list[tuple[int, bool]], set[int]]:
    """The events, then the deliveries (index into the events, replayed?) in arrival order, and
    the delivery indexes before which the consumer restarts."""
    size = draw(st.integers(1, 10))
    sent = [draw(st.one_of(architect(n), platform(n))) for n in range(size)]
    deliveries = [(index, False) for index in range(size)]
    deliveries += draw(
        st.lists(st.tuples(st.integers(0, size - 1), st.booleans()), max_size=size)
    )  # sender retries, redeliveries, dead-letter replays
    order = draw(st.permutations(deliveries))
    restarts = draw(st.sets(st.integers(1, len(order)), max_size=2))
    return sent, order, restarts


def expected(sent: list[Sent]) -> dict[str, dict[str, Any]]:
    """Per customer and attribute, the value of the newest event (completion time, then event id)
    that carried it; a customer none of whose events carried anything is not in the CRM."""
    newest: dict[str, dict[str, tuple[tuple[int, str], Any]]] = {}
    for item in sent:
        for name, value in item.carries.items():
            version = (item.completed_ms, item.event_id)
            held = newest.setdefault(item.customer_id, {}).get(name)
            if held is None or version > held[0]:
                newest[item.customer_id][name] = (version, value)
    return {
        customer: EMPTY | {name: value for name, (_, value) in by_name.items()}
        for customer, by_name in newest.items()
        if by_name
    }


async def run(sent: list[Sent], order: list[tuple[int, bool]], restarts: set[int]) -> None:
    crm_settings = CrmSimulatorSettings(token=SecretStr(TOKEN), port=0)
    mapper = EventMapper(["externalContactId", "conversationExternalContactIds"])
    arrival_ms = millis(60 * 24)  # everything reaches Kafka a day later, in this order
    received = T0 + timedelta(days=1)  # so no completion time lies ahead of the bridge's clock
    events = [mapper.map(item.document, received).event for item in sent]
    async with TestServer(create_app(crm_settings)) as server:
        crm_url = str(server.make_url("")).rstrip("/")
        changelog = MemoryChangelog()
        consumer = await in_process_consumer(crm_url, TOKEN, changelog)
        replays = 0
        try:
            for position, (index, replayed) in enumerate(order):
                if position in restarts:  # a crash: only the changelog survives
                    await consumer.close()
                    consumer = await in_process_consumer(crm_url, TOKEN, changelog)
                replays += replayed
                message = record(
                    events[index], timestamp_ms=arrival_ms, replays=replays if replayed else None
                )
                await consumer.processor.handle(message)
            assert consumer.dead_letters.letters == []
        finally:
            await consumer.close()
        final = {}
        async with aiohttp.ClientSession() as client:
            for customer in CUSTOMERS:
                async with client.get(f"{crm_url}/_sim/customers/{customer}") as response:
                    if response.status == 200:
                        final[customer] = (await response.json())["attributes"]
    assert final == expected(sent)


@settings(max_examples=150)
@given(scenarios())
def test_the_crm_ends_with_the_newest_value_of_every_attribute(
    scenario: tuple[list[Sent], list[tuple[int, bool]], set[int]],
) -> None:
    asyncio.run(run(*scenario))
