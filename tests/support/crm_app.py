"""The CRM simulator application in-process (a real server on a free port) and a client's helpers.

For unit tests of the simulator and of the HTTP sink; integration tests start it as a process
(:mod:`support.crm`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from sandbox.crm import CrmSimulatorSettings, create_app

TOKEN = "crm-test-token-7f3a"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

Client = TestClient[web.Request, web.Application]
StartCrm = Callable[..., Awaitable[Client]]


@asynccontextmanager
async def crm_apps() -> AsyncIterator[StartCrm]:
    """Start simulators with settings overrides (``start(rate_limit_per_s=2)``); closed after."""
    clients: list[Client] = []

    async def start(**overrides: Any) -> Client:
        settings = CrmSimulatorSettings(token=SecretStr(TOKEN), port=0, **overrides)
        client: Client = TestClient(TestServer(create_app(settings)))
        await client.start_server()
        clients.append(client)
        return client

    try:
        yield start
    finally:
        for client in clients:
            await client.close()


def base_url(client: Client) -> str:
    return str(client.make_url("")).rstrip("/")


def update_body(
    customer_id: str,
    *,
    summary: str | None = "resolved-billing",
    sentiment: Any = 0.4,
    tags: list[Any] | None = None,
    last_updated: str = "2026-11-28T10:15:00Z",
) -> dict[str, Any]:
    return {
        "id": customer_id,
        "attributes": {
            "last_interaction_summary": summary,
            "sentiment": sentiment,
            "segmentation_tags": ["churn_risk"] if tags is None else tags,
        },
        "last_updated": last_updated,
    }


async def update(
    client: Client,
    body: Any,
    *,
    key: str | None = None,
    headers: dict[str, str] | None = None,
    timeout: aiohttp.ClientTimeout | None = None,
) -> aiohttp.ClientResponse:
    sent = {**AUTH, **({"Idempotency-Key": key} if key is not None else {}), **(headers or {})}
    if timeout is None:
        return await client.post("/v1/customers/update", json=body, headers=sent)
    return await client.post("/v1/customers/update", json=body, headers=sent, timeout=timeout)


async def create(
    client: Client, customer_id: str, *, key: str | None = None, **extra: Any
) -> aiohttp.ClientResponse:
    sent = {**AUTH, **({"Idempotency-Key": key} if key is not None else {})}
    return await client.post("/v1/customers", json={"id": customer_id, **extra}, headers=sent)


async def writes(client: Client, customer_id: str | None = None) -> list[dict[str, Any]]:
    params = {"customer_id": customer_id} if customer_id is not None else {}
    response = await client.get("/_sim/writes", params=params)
    assert response.status == 200
    entries: list[dict[str, Any]] = (await response.json())["writes"]
    return entries


async def customer(client: Client, customer_id: str) -> dict[str, Any] | None:
    response = await client.get(f"/_sim/customers/{customer_id}")
    if response.status == 404:
        assert (await response.json())["error"] == "customer_not_found"
        return None
    assert response.status == 200
    record: dict[str, Any] = await response.json()
    return record


async def stats(client: Client) -> dict[str, Any]:
    response = await client.get("/_sim/stats")
    assert response.status == 200
    body: dict[str, Any] = await response.json()
    return body


async def set_faults(client: Client, **changes: Any) -> dict[str, Any]:
    response = await client.post("/_sim/faults", json=changes)
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def assert_error(response: aiohttp.ClientResponse, status: int, code: str) -> dict[str, Any]:
    body: dict[str, Any] = await response.json()
    assert response.status == status, body
    assert body["error"] == code
    assert isinstance(body["detail"], str)
    assert body["detail"]
    return body


async def requests(client: Client) -> list[dict[str, Any]]:
    response = await client.get("/_sim/requests")
    assert response.status == 200
    entries: list[dict[str, Any]] = (await response.json())["requests"]
    return entries
