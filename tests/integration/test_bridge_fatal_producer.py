"""A fatal idempotent-producer error, raised inside the real client against the real broker:
the bridge replaces its producer and serves again, and /readyz says not ready meanwhile
(issue 8 §7: before, every request got 503 for ever while /readyz said ready)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from support.bridge import EVENTS, BridgeUnderTest, architect, serve_bridge
from support.kafka import TopicFactory
from support.librdkafka import inject_fatal_error
from support.waiting import eventually

pytestmark = pytest.mark.kafka

CLIENT_ID = "segstream-bridge"


@pytest.fixture
async def bridge(kafka_bootstrap: str, topics: TopicFactory) -> AsyncIterator[BridgeUnderTest]:
    async with serve_bridge(kafka_bootstrap, topics.create("fatal")) as served:
        yield served


async def test_after_a_fatal_producer_error_the_bridge_serves_again_and_loses_no_202(
    bridge: BridgeUnderTest,
) -> None:
    accepted: list[str] = []
    first = await bridge.post(EVENTS, architect())
    assert first.status == 202
    accepted.append(first.body["event_id"])

    inject_fatal_error(bridge.publisher._producer, CLIENT_ID)
    statuses: list[int] = []

    async def stored_again() -> bool:
        answer = await bridge.post(EVENTS, architect())
        statuses.append(answer.status)
        if answer.status == 202:
            accepted.append(answer.body["event_id"])
        return answer.status == 202

    await eventually(stored_again, timeout=20, interval=0.1)
    assert set(statuses) <= {202, 503}
    assert bridge.publisher.replacements == 1
    assert (await bridge.request("GET", "/readyz")).status == 200
    stored = {dict(r.headers() or [])["event-id"].decode() for r in bridge.records()}
    assert set(accepted) <= stored


async def test_while_a_replacement_waits_the_bridge_is_not_ready_then_it_is(
    bridge: BridgeUnderTest,
) -> None:
    assert (await bridge.post(EVENTS, architect())).status == 202
    inject_fatal_error(bridge.publisher._producer, CLIENT_ID)

    async def storing_again() -> bool:
        return (await bridge.post(EVENTS, architect())).status == 202

    await eventually(storing_again, timeout=20, interval=0.1)
    # A second fatal error right after the first: the next replacement waits its minimum
    # interval, and meanwhile the probe must not send traffic here.
    inject_fatal_error(bridge.publisher._producer, CLIENT_ID)

    async def not_ready() -> bool:
        return (await bridge.request("GET", "/readyz")).status == 503

    await eventually(not_ready, timeout=5)
    assert (await bridge.post(EVENTS, architect())).status == 503

    async def ready_and_storing() -> bool:
        ready = (await bridge.request("GET", "/readyz")).status == 200
        return ready and (await bridge.post(EVENTS, architect())).status == 202

    await eventually(ready_and_storing, timeout=30, interval=0.2)
    assert bridge.publisher.replacements == 2
