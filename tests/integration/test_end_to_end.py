"""One real event: signed webhook → bridge → real broker → consumer → CRM simulator."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sandbox.kafka.broker import free_port
from sandbox.secrets import ensure_secret_file, new_bearer_token, new_webhook_secret
from sandbox.send import signed_headers
from support.kafka import TopicFactory, read_all
from support.services import ServiceProcess
from support.waiting import eventually

pytestmark = pytest.mark.kafka

ARCHITECT_EVENT = {
    "customerId": "C-1001",
    "contactId": "7d0c6a1e",
    "channel": "voice",
    "startTime": "2026-11-28T10:15:00Z",
    "interactionSummary": "resolved-billing",
    "sentimentScore": 0.4,
    "tags": ["churn_risk"],
    "idempotency_key": "7d0c6a1e-2026-11-28T10:15:00Z",
}


@dataclass
class Stack:
    bridge_url: str
    crm_url: str
    topic: str
    secret: str
    bootstrap: str


@pytest.fixture
def stack(
    kafka_bootstrap: str, topics: TopicFactory, group_id: str, run_dir: Path
) -> Iterator[Stack]:
    topic = topics.create("interactions", partitions=3)
    dlq = topics.create("interactions-dlq", partitions=3)
    secret_file, token_file = run_dir / "webhook-secret", run_dir / "crm-token"
    secret = ensure_secret_file(secret_file, new_webhook_secret)
    ensure_secret_file(token_file, new_bearer_token)
    crm_port, bridge_port, metrics_port = free_port(), free_port(), free_port()
    common = {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap}
    started: list[ServiceProcess] = []
    try:
        crm = ServiceProcess(
            "crm-sim",
            ["sandbox", "crm"],
            {
                "SEGSTREAM_CRM_SIM_PORT": str(crm_port),
                "SEGSTREAM_CRM_SIM_TOKEN_FILE": str(token_file),
            },
            run_dir,
        )
        started.append(crm)
        consumer = ServiceProcess(
            "consumer",
            ["consumer", "run"],
            {
                **common,
                "SEGSTREAM_CONSUMER_TOPIC": topic,
                "SEGSTREAM_CONSUMER_DEAD_LETTER_TOPIC": dlq,
                "SEGSTREAM_CONSUMER_GROUP_ID": group_id,
                "SEGSTREAM_CONSUMER_CRM_BASE_URL": f"http://127.0.0.1:{crm_port}",
                "SEGSTREAM_CONSUMER_CRM_TOKEN_FILE": str(token_file),
                "SEGSTREAM_CONSUMER_METRICS_PORT": str(metrics_port),
            },
            run_dir,
        )
        started.append(consumer)
        bridge = ServiceProcess(
            "bridge",
            ["producer_bridge"],
            {
                **common,
                "SEGSTREAM_BRIDGE_PORT": str(bridge_port),
                "SEGSTREAM_BRIDGE_TOPIC": topic,
                "SEGSTREAM_BRIDGE_WEBHOOK_SECRETS_FILE": str(secret_file),
            },
            run_dir,
        )
        started.append(bridge)
        crm.wait_http(f"http://127.0.0.1:{crm_port}/healthz")
        bridge.wait_http(f"http://127.0.0.1:{bridge_port}/healthz")
        consumer.wait_http(f"http://127.0.0.1:{metrics_port}/metrics")
        yield Stack(
            f"http://127.0.0.1:{bridge_port}",
            f"http://127.0.0.1:{crm_port}",
            topic,
            secret,
            kafka_bootstrap,
        )
    finally:
        codes = {service.name: service.stop() for service in started}
    assert codes == dict.fromkeys(codes, 0), f"a service did not stop cleanly: {codes}"


async def post_signed(url: str, secret: str, payload: Any, **extra_headers: str) -> tuple[int, Any]:
    body = json.dumps(payload)
    headers = {**signed_headers(secret, body), **extra_headers}
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=headers) as r,
    ):
        return r.status, await r.json(content_type=None)


async def test_a_signed_event_reaches_the_crm_with_its_event_id_as_idempotency_key(
    stack: Stack,
) -> None:
    status, body = await post_signed(
        stack.bridge_url + "/v1/interactions/completed", stack.secret, ARCHITECT_EVENT
    )
    assert status == 202, body
    assert body["event_id"] == ARCHITECT_EVENT["idempotency_key"]

    async with aiohttp.ClientSession() as session:

        async def customer() -> dict[str, Any] | None:
            async with session.get(f"{stack.crm_url}/_sim/customers/C-1001") as response:
                return await response.json() if response.status == 200 else None

        record = await eventually(customer, timeout=30)
        assert record["attributes"] == {
            "last_interaction_summary": "resolved-billing",
            "sentiment": 0.4,
            "segmentation_tags": ["churn_risk"],
        }
        async with session.get(
            f"{stack.crm_url}/_sim/writes", params={"customer_id": "C-1001"}
        ) as r:
            writes = (await r.json())["writes"]
        async with session.get(f"{stack.crm_url}/_sim/requests") as r:
            requests = (await r.json())["requests"]
    # A new customer: the update is answered 404, and the customer is created with the
    # attributes instead (the seed's Edge Case 2), under a key derived from the event id.
    key = ARCHITECT_EVENT["idempotency_key"]
    assert [(q["path"], q["status"], q["idempotency_key"]) for q in requests] == [
        ("/v1/customers/update", 404, key),
        ("/v1/customers", 201, f"{key}:create"),
    ]
    assert [(w["operation"], w["body"]["attributes"]) for w in writes] == [
        ("create", record["attributes"])
    ]

    [record_on_topic] = read_all(stack.bootstrap, stack.topic)
    assert record_on_topic.key() == b"C-1001"
    headers = dict(record_on_topic.headers() or [])
    assert headers["event-id"] == ARCHITECT_EVENT["idempotency_key"].encode()


@pytest.mark.parametrize("tamper", ["wrong-secret", "no-signature", "altered-body"])
async def test_a_bad_signature_gets_401_and_produces_nothing(stack: Stack, tamper: str) -> None:
    body = json.dumps(ARCHITECT_EVENT)
    headers = signed_headers(stack.secret, body)
    if tamper == "wrong-secret":
        headers = signed_headers(new_webhook_secret(), body)
    elif tamper == "no-signature":
        del headers["webhook-signature"]
    else:
        body = body.replace("churn_risk", "loyal")
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            stack.bridge_url + "/v1/interactions/completed", data=body, headers=headers
        ) as response,
    ):
        assert response.status == 401
        assert response.content_type == "application/problem+json"
        problem = await response.json(content_type=None)
    assert problem["status"] == 401
    assert read_all(stack.bootstrap, stack.topic) == []
