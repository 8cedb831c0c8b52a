"""README, "Errors": "the order of the checks is the order of this table". Each pair of
neighbouring checks is tested here with both faults in one request: the earlier check answers,
and nothing is stored."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from sandbox.kafka.broker import free_port
from sandbox.secrets import new_webhook_secret
from sandbox.send import signed_headers
from support.bridge import (
    BATCH,
    EVENTS,
    BridgeUnderTest,
    architect,
    assert_problem,
    serve_bridge,
)
from support.kafka import TopicFactory
from support.rawhttp import raw_exchange, request_head

pytestmark = pytest.mark.kafka

READ_TIMEOUT_MS = 1500
TOO_LONG = str(10 * 1024 * 1024)


@pytest.fixture
async def bridge(kafka_bootstrap: str, topics: TopicFactory) -> AsyncIterator[BridgeUnderTest]:
    async with serve_bridge(
        kafka_bootstrap, topics.create("order"), body_read_timeout_ms=READ_TIMEOUT_MS
    ) as served:
        yield served


def signature(bridge: BridgeUnderTest, body: str, secret: str | None = None) -> dict[str, str]:
    headers = signed_headers(secret or bridge.secret, body)
    headers.pop("Content-Type", None)
    return headers


def expired(bridge: BridgeUnderTest) -> dict[str, str]:
    headers = signature(bridge, "{}")
    headers["webhook-timestamp"] = str(int(headers["webhook-timestamp"]) - 400)
    return headers


async def test_404_before_401(bridge: BridgeUnderTest) -> None:
    answer = await bridge.post("/v1/interactions", architect(), sign=False)
    assert_problem(answer, 404)


async def test_405_before_401(bridge: BridgeUnderTest) -> None:
    answer = await bridge.request("PUT", EVENTS, data=b"{}")
    assert_problem(answer, 405)
    assert answer.headers["Allow"] == "POST"


async def test_401_before_415(bridge: BridgeUnderTest) -> None:
    answer = await bridge.post(
        EVENTS, architect(), sign=False, headers={"Content-Type": "text/plain"}
    )
    assert_problem(answer, 401)


@pytest.mark.parametrize("path", [EVENTS, BATCH])
async def test_401_for_credentials_that_cannot_be_valid_before_413(
    bridge: BridgeUnderTest, path: str
) -> None:
    head = request_head(
        path, {"Content-Type": "application/json", **expired(bridge), "Content-Length": TOO_LONG}
    )
    assert (await raw_exchange(bridge.url, head)).status == 401


@pytest.mark.parametrize(
    "unacceptable",
    [
        {"Content-Type": "text/plain"},
        {"Content-Type": "application/json", "Content-Encoding": "br, gzip"},
    ],
    ids=["content-type", "content-coding"],
)
async def test_415_before_413(bridge: BridgeUnderTest, unacceptable: dict[str, str]) -> None:
    head = request_head(
        EVENTS, {**unacceptable, **signature(bridge, "{}"), "Content-Length": TOO_LONG}
    )
    assert (await raw_exchange(bridge.url, head)).status == 415


async def test_413_before_a_signature_that_does_not_match(bridge: BridgeUnderTest) -> None:
    # The signature can only be checked over the bytes read, and no more than the limit is read.
    body = json.dumps(architect(interactionSummary="x" * 11_000))
    answer = await bridge.post(
        EVENTS, raw=body.encode(), sign=False, headers=signature(bridge, body, new_webhook_secret())
    )
    assert_problem(answer, 413)


async def test_408_before_400(bridge: BridgeUnderTest) -> None:
    body = '{"customerId": "C-1", '  # never completed: malformed too
    head = request_head(
        EVENTS,
        {"Content-Type": "application/json", **signature(bridge, body), "Content-Length": "500"},
    )
    assert (await raw_exchange(bridge.url, head + body.encode())).status == 408


async def test_a_signature_that_does_not_match_before_400(bridge: BridgeUnderTest) -> None:
    body = '{"customerId": '
    answer = await bridge.post(
        EVENTS, raw=body.encode(), sign=False, headers=signature(bridge, body, new_webhook_secret())
    )
    assert_problem(answer, 401)


@pytest.mark.parametrize("path", [EVENTS, BATCH])
async def test_400_before_422(bridge: BridgeUnderTest, path: str) -> None:
    # A member twice (400) in an event that is also invalid (422: no such channel).
    event = '{"channel": "fax", "channel": "fax", "customerId": "${input.customerId}"}'
    body = event if path == EVENTS else f"[{event}]"
    assert_problem(await bridge.post(path, raw=body.encode()), 400)
    assert bridge.records() == []


async def test_413_for_too_many_events_before_422(bridge: BridgeUnderTest) -> None:
    answer = await bridge.post(BATCH, [architect(channel="fax") for _ in range(101)])
    assert assert_problem(answer, 413)["max_events"] == 100


async def test_422_before_503() -> None:
    nowhere = f"127.0.0.1:{free_port()}"
    async with serve_bridge(nowhere, "interactions", delivery_timeout_ms=1000) as unreachable:
        answer = await unreachable.post(EVENTS, architect(channel="fax"))
        assert_problem(answer, 422)
        batch = await unreachable.post(BATCH, [architect(), architect(channel="fax")])
        assert assert_problem(batch, 422)["invalid_indexes"] == [1]
