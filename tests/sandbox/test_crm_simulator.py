"""The CRM simulator, seen from a client: a real server on a local port, driven over HTTP."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr, ValidationError

from sandbox.crm import CrmSimulatorSettings, CrmTokenError, create_app, serve
from sandbox.crm.logs import json_handler
from sandbox.crm.ratelimit import TokenBucket

TOKEN = "crm-test-token-7f3a"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ISO_UTC_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")

Client = TestClient[web.Request, web.Application]
StartCrm = Callable[..., Awaitable[Client]]


@pytest.fixture(autouse=True)
def _no_ambient_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's SEGSTREAM_CRM_SIM_* variables must not change what these tests see."""
    for name in list(os.environ):
        if name.startswith("SEGSTREAM_CRM_SIM_"):
            monkeypatch.delenv(name)


@pytest.fixture
async def start_crm() -> AsyncIterator[StartCrm]:
    """Start simulators (real servers on free ports) with settings overrides; closed after."""
    clients: list[Client] = []

    async def start(**overrides: Any) -> Client:
        settings = CrmSimulatorSettings(token=SecretStr(TOKEN), port=0, **overrides)
        client: Client = TestClient(TestServer(create_app(settings)))
        await client.start_server()
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.close()


@pytest.fixture
async def crm(start_crm: StartCrm) -> Client:
    return await start_crm()


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
    client: Client, body: Any, *, key: str | None = None, headers: dict[str, str] | None = None
) -> aiohttp.ClientResponse:
    sent = {**AUTH, **({"Idempotency-Key": key} if key is not None else {}), **(headers or {})}
    return await client.post("/v1/customers/update", json=body, headers=sent)


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


# -- health and auth ---------------------------------------------------------------------------


async def test_healthz_needs_no_token(crm: Client) -> None:
    response = await crm.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="missing"),
        pytest.param({"Authorization": "Bearer wrong-token"}, id="wrong-token"),
        pytest.param({"Authorization": f"Bearer {TOKEN}x"}, id="token-with-suffix"),
        pytest.param({"Authorization": f"Basic {TOKEN}"}, id="wrong-scheme"),
        pytest.param({"Authorization": "Bearer"}, id="empty-token"),
    ],
)
async def test_requests_without_the_right_token_get_401(
    crm: Client, headers: dict[str, str]
) -> None:
    response = await crm.post("/v1/customers", json={"id": "C-1"}, headers=headers)
    await assert_error(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert await customer(crm, "C-1") is None
    assert await writes(crm) == []


async def test_revoked_token_gets_401_until_restored(start_crm: StartCrm) -> None:
    crm = await start_crm(revoke_token=True)
    response = await create(crm, "C-1")
    body = await assert_error(response, 401, "unauthorized")
    assert "revoked" in body["detail"]
    assert await customer(crm, "C-1") is None

    assert (await set_faults(crm, revoke_token=False))["revoke_token"] is False
    assert (await create(crm, "C-1")).status == 201


# -- create and update -------------------------------------------------------------------------


async def test_unknown_customer_404_then_create_then_update(crm: Client) -> None:
    response = await update(crm, update_body("C-1001"))
    await assert_error(response, 404, "customer_not_found")
    assert await customer(crm, "C-1001") is None

    response = await create(crm, "C-1001")
    assert response.status == 201
    assert await response.json() == {"id": "C-1001", "version": 0}
    await assert_error(await create(crm, "C-1001"), 409, "customer_exists")

    response = await update(crm, update_body("C-1001", sentiment=0.4, tags=["churn_risk"]))
    assert response.status == 200
    assert await response.json() == {"id": "C-1001", "version": 1}

    second = update_body(
        "C-1001", summary=None, sentiment=None, tags=[], last_updated="2026-11-28T11:00:00+01:00"
    )
    response = await update(crm, second)
    assert await response.json() == {"id": "C-1001", "version": 2}

    record = await customer(crm, "C-1001")
    assert record is not None
    assert record["version"] == 2
    assert record["attributes"] == {
        "last_interaction_summary": None,
        "sentiment": None,
        "segmentation_tags": [],
    }
    assert record["last_updated"] == "2026-11-28T11:00:00+01:00"
    assert ISO_UTC_MS.match(record["created_at"])


async def test_create_with_attributes_stores_them(crm: Client) -> None:
    attributes = update_body("C-1")["attributes"]
    assert (await create(crm, "C-1", attributes=attributes)).status == 201
    record = await customer(crm, "C-1")
    assert record is not None
    assert record["attributes"] == attributes
    assert record["last_updated"] is None


async def test_an_update_sets_the_attributes_it_names_and_keeps_the_others(crm: Client) -> None:
    full = update_body("C-1")["attributes"]
    assert (await create(crm, "C-1", attributes=full)).status == 201
    only_sentiment = {**update_body("C-1"), "attributes": {"sentiment": -0.2}}
    assert (await update(crm, only_sentiment)).status == 200
    cleared_tags = {**update_body("C-1"), "attributes": {"segmentation_tags": []}}
    assert (await update(crm, cleared_tags)).status == 200
    record = await customer(crm, "C-1")
    assert record is not None
    assert record["attributes"] == {**full, "sentiment": -0.2, "segmentation_tags": []}
    assert record["version"] == 2


async def test_create_with_some_attributes_leaves_the_rest_empty(crm: Client) -> None:
    assert (await create(crm, "C-1", attributes={"segmentation_tags": ["vip"]})).status == 201
    record = await customer(crm, "C-1")
    assert record is not None
    assert record["attributes"] == {
        "last_interaction_summary": None,
        "sentiment": None,
        "segmentation_tags": ["vip"],
    }


async def test_auto_create_creates_unknown_customers_on_update(start_crm: StartCrm) -> None:
    crm = await start_crm(auto_create=True)
    response = await update(crm, update_body("C-new"))
    assert response.status == 200
    assert await response.json() == {"id": "C-new", "version": 1}
    record = await customer(crm, "C-new")
    assert record is not None
    assert record["attributes"]["segmentation_tags"] == ["churn_risk"]


async def test_write_log_keeps_arrival_order_per_customer(crm: Client) -> None:
    await create(crm, "C-1", key="c1-create")
    await create(crm, "C-2")
    for n in range(3):
        body = update_body("C-1", summary=f"step-{n}")
        assert (await update(crm, body, key=f"c1-{n}")).status == 200
        assert (await update(crm, update_body("C-2", summary=f"other-{n}"))).status == 200

    c1 = await writes(crm, "C-1")
    assert [entry["operation"] for entry in c1] == ["create", "update", "update", "update"]
    assert [entry["idempotency_key"] for entry in c1] == ["c1-create", "c1-0", "c1-1", "c1-2"]
    assert [entry["status"] for entry in c1] == [201, 200, 200, 200]
    assert [entry["body"]["attributes"]["last_interaction_summary"] for entry in c1[1:]] == [
        "step-0",
        "step-1",
        "step-2",
    ]
    assert all(entry["customer_id"] == "C-1" for entry in c1)
    assert all(ISO_UTC_MS.match(entry["received_at"]) for entry in c1)
    assert [entry["received_at"] for entry in c1] == sorted(entry["received_at"] for entry in c1)

    everything = await writes(crm)
    assert len(everything) == 8
    assert [entry["customer_id"] for entry in everything[:2]] == ["C-1", "C-2"]
    assert (await writes(crm, "nobody")) == []


# -- idempotency -------------------------------------------------------------------------------


async def test_same_idempotency_key_twice_is_one_write(crm: Client) -> None:
    await create(crm, "C-1")
    body = update_body("C-1")

    first = await update(crm, body, key="evt-1")
    assert first.status == 200
    assert "Idempotent-Replayed" not in first.headers
    second = await update(crm, body, key="evt-1")
    assert second.status == 200
    assert second.headers["Idempotent-Replayed"] == "true"
    assert await second.json() == await first.json() == {"id": "C-1", "version": 1}

    assert [entry["idempotency_key"] for entry in await writes(crm, "C-1")][1:] == ["evt-1"]
    record = await customer(crm, "C-1")
    assert record is not None
    assert record["version"] == 1
    counts = await stats(crm)
    assert counts["replayed"] == 1
    assert counts["by_status"]["200"] == 2


async def test_replay_ignores_key_order_and_spacing(crm: Client) -> None:
    await create(crm, "C-1")
    body = update_body("C-1")
    assert (await update(crm, body, key="evt-1")).status == 200
    reordered = json.dumps(dict(reversed(list(body.items()))), indent=2)
    response = await crm.post(
        "/v1/customers/update",
        data=reordered,
        headers={**AUTH, "Idempotency-Key": "evt-1", "Content-Type": "application/json"},
    )
    assert response.status == 200
    assert response.headers["Idempotent-Replayed"] == "true"


async def test_idempotency_key_reused_with_different_payload_is_422(crm: Client) -> None:
    await create(crm, "C-1")
    assert (await update(crm, update_body("C-1", sentiment=0.1), key="evt-1")).status == 200

    response = await update(crm, update_body("C-1", sentiment=0.9), key="evt-1")
    body = await assert_error(response, 422, "idempotency_key_reused")
    assert body["detail"] == "Idempotency-Key reused with a different payload"
    # The same key on another endpoint is a different payload too.
    await assert_error(await create(crm, "C-2", key="evt-1"), 422, "idempotency_key_reused")

    record = await customer(crm, "C-1")
    assert record is not None
    assert record["attributes"]["sentiment"] == 0.1
    assert record["version"] == 1
    assert await customer(crm, "C-2") is None
    assert len(await writes(crm)) == 2


async def test_a_404_is_not_remembered_so_create_then_retry_with_the_same_key_applies(
    crm: Client,
) -> None:
    body = update_body("C-missing")
    await assert_error(await update(crm, body, key="evt-404"), 404, "customer_not_found")
    assert (await create(crm, "C-missing", key="evt-404:create")).status == 201
    retried = await update(crm, body, key="evt-404")
    assert retried.status == 200
    assert "Idempotent-Replayed" not in retried.headers
    assert [w["operation"] for w in await writes(crm, "C-missing")] == ["create", "update"]


async def test_business_4xx_answers_are_replayed(crm: Client) -> None:
    body = update_body("C-1", sentiment=2.0)
    await assert_error(await update(crm, body, key="evt-422"), 422, "invalid_payload")
    replay = await update(crm, body, key="evt-422")
    await assert_error(replay, 422, "invalid_payload")
    assert replay.headers["Idempotent-Replayed"] == "true"

    assert (await create(crm, "C-1", key="create-1")).status == 201
    replay = await create(crm, "C-1", key="create-1")
    assert replay.status == 201
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert len(await writes(crm, "C-1")) == 1


async def test_5xx_answers_are_not_remembered_so_a_retry_is_processed(
    start_crm: StartCrm,
) -> None:
    crm = await start_crm(error_rate=1.0)
    body = update_body("C-1")
    failed = await update(crm, body, key="evt-1")
    assert failed.status in {500, 503}

    await set_faults(crm, error_rate=0.0)
    await create(crm, "C-1")
    retried = await update(crm, body, key="evt-1")
    assert retried.status == 200
    assert "Idempotent-Replayed" not in retried.headers
    assert [entry["idempotency_key"] for entry in await writes(crm, "C-1")] == [None, "evt-1"]


async def test_concurrent_requests_with_one_key_apply_once(start_crm: StartCrm) -> None:
    crm = await start_crm(latency_ms_min=20, latency_ms_max=20)
    await create(crm, "C-1")
    body = update_body("C-1")
    first, second = await asyncio.gather(
        update(crm, body, key="evt-1"), update(crm, body, key="evt-1")
    )
    assert {first.status, second.status} == {200}
    replayed = [r.headers.get("Idempotent-Replayed") for r in (first, second)]
    assert sorted(replayed, key=str) == [None, "true"]
    assert len(await writes(crm, "C-1")) == 2  # the create and one update


@pytest.mark.parametrize("key", ["", "   ", "x" * 256])
async def test_malformed_idempotency_key_is_400(crm: Client, key: str) -> None:
    await create(crm, "C-1")
    response = await crm.post(
        "/v1/customers/update",
        data=json.dumps(update_body("C-1")),
        headers={**AUTH, "Content-Type": "application/json", "Idempotency-Key": key},
    )
    await assert_error(response, 400, "bad_idempotency_key")


# -- payload validation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param(update_body("C-1", sentiment=1.5), "attributes.sentiment", id="sentiment>1"),
        pytest.param(
            update_body("C-1", sentiment=-1.01), "attributes.sentiment", id="sentiment<-1"
        ),
        pytest.param(
            update_body("C-1", sentiment="0.4"), "attributes.sentiment", id="sentiment-str"
        ),
        pytest.param(
            update_body("C-1", sentiment=True), "attributes.sentiment", id="sentiment-bool"
        ),
        pytest.param(
            {k: v for k, v in update_body("C-1").items() if k != "id"}, "id", id="missing-id"
        ),
        pytest.param(update_body(""), "id", id="empty-id"),
        pytest.param(update_body("   "), "id", id="blank-id"),
        pytest.param(
            {k: v for k, v in update_body("C-1").items() if k != "last_updated"},
            "last_updated",
            id="missing-last-updated",
        ),
        pytest.param(
            update_body("C-1", last_updated="yesterday"), "last_updated", id="bad-timestamp"
        ),
        pytest.param(
            update_body("C-1", last_updated="2026-11-28T10:15:00"),
            "last_updated",
            id="timestamp-without-offset",
        ),
        pytest.param({**update_body("C-1"), "attributes": {}}, "attributes", id="no-attribute"),
        pytest.param(
            {**update_body("C-1"), "attributes": {"segmentation_tags": None}},
            "attributes",
            id="tags-null",
        ),
        pytest.param(
            {**update_body("C-1"), "attributes": {"segment": "gold"}},
            "attributes.segment",
            id="unknown-attribute",
        ),
        pytest.param(
            {**update_body("C-1"), "attributes": None}, "attributes", id="attributes-null"
        ),
        pytest.param(
            update_body("C-1", tags=["ok", 3]), "attributes.segmentation_tags.1", id="tag-not-str"
        ),
        pytest.param({**update_body("C-1"), "extra": 1}, "extra", id="unknown-field"),
        pytest.param([update_body("C-1")], "body", id="not-an-object"),
    ],
)
async def test_invalid_update_is_422_naming_the_field(crm: Client, body: Any, field: str) -> None:
    await create(crm, "C-1")
    response = await update(crm, body)
    problem = await assert_error(response, 422, "invalid_payload")
    assert field in [item["field"] for item in problem["fields"]], problem
    assert field in problem["detail"]
    record = await customer(crm, "C-1")
    assert record is not None
    assert record["version"] == 0
    assert len(await writes(crm)) == 1


async def test_reject_prefix_is_422_and_changes_nothing(start_crm: StartCrm) -> None:
    crm = await start_crm(reject_customer_prefix="BAD-")
    assert (await create(crm, "BAD-1")).status == 201
    response = await update(crm, update_body("BAD-1"), key="evt-bad")
    body = await assert_error(response, 422, "rejected")
    assert body["detail"] == "rejected by CRM validation"
    record = await customer(crm, "BAD-1")
    assert record is not None
    assert record["version"] == 0
    assert [entry["operation"] for entry in await writes(crm, "BAD-1")] == ["create"]
    # Others pass; and the prefix can be lifted at run time.
    await create(crm, "GOOD-1")
    assert (await update(crm, update_body("GOOD-1"))).status == 200
    await set_faults(crm, reject_customer_prefix=None)
    assert (await update(crm, update_body("BAD-1"), key="evt-bad-2")).status == 200


async def test_invalid_create_is_422(crm: Client) -> None:
    await assert_error(await create(crm, ""), 422, "invalid_payload")
    response = await create(crm, "C-1", attributes={"sentiment": 2})
    problem = await assert_error(response, 422, "invalid_payload")
    assert "attributes.sentiment" in [item["field"] for item in problem["fields"]]
    await assert_error(await create(crm, "C-1", version=3), 422, "invalid_payload")
    assert await writes(crm) == []


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"{not json", id="malformed"),
        pytest.param(b"", id="empty"),
        pytest.param(b'{"id": "C-1", "x": NaN}', id="nan"),
        pytest.param(b"\xff\xfe{}", id="not-utf8"),
    ],
)
async def test_bad_json_is_400(crm: Client, data: bytes) -> None:
    response = await crm.post(
        "/v1/customers/update",
        data=data,
        headers={**AUTH, "Content-Type": "application/json"},
    )
    await assert_error(response, 400, "bad_json")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
async def test_wrong_content_type_is_415(crm: Client, content_type: str | None) -> None:
    await create(crm, "C-1")
    headers = {**AUTH, **({"Content-Type": content_type} if content_type else {})}
    response = await crm.post(
        "/v1/customers/update", data=json.dumps(update_body("C-1")).encode(), headers=headers
    )
    await assert_error(response, 415, "unsupported_media_type")
    assert len(await writes(crm)) == 1


async def test_json_with_charset_is_accepted(crm: Client) -> None:
    response = await crm.post(
        "/v1/customers",
        data=json.dumps({"id": "C-1"}),
        headers={**AUTH, "Content-Type": "application/json; charset=utf-8"},
    )
    assert response.status == 201


async def test_oversized_body_is_413(crm: Client) -> None:
    data = io.BytesIO(json.dumps(update_body("C-1", summary="x" * (1024 * 1024 + 1))).encode())
    response = await crm.post(
        "/v1/customers/update",
        data=data,
        headers={**AUTH, "Content-Type": "application/json"},
    )
    await assert_error(response, 413, "request_entity_too_large")
    assert (await stats(crm))["by_status"] == {"413": 1}


async def test_wrong_method_and_unknown_route_answer_json(crm: Client) -> None:
    response = await crm.get("/v1/customers/update", headers=AUTH)
    await assert_error(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]
    await assert_error(await crm.get("/v1/nothing", headers=AUTH), 404, "not_found")
    await assert_error(await crm.get("/v1/nothing"), 401, "unauthorized")


# -- rate limit --------------------------------------------------------------------------------


async def test_rate_limit_burst_then_429_then_recovers_after_retry_after_ms(
    start_crm: StartCrm,
) -> None:
    # 2/s: a token takes 500 ms to come back, far longer than the three requests of the burst.
    crm = await start_crm(rate_limit_per_s=2, rate_limit_burst=3, auto_create=True)
    for n in range(3):
        assert (await update(crm, update_body(f"C-{n}"))).status == 200

    limited = await update(crm, update_body("C-limited"))
    await assert_error(limited, 429, "rate_limited")
    retry_after_s = int(limited.headers["Retry-After"])
    retry_after_ms = int(limited.headers["Retry-After-Ms"])
    assert retry_after_s >= 1
    assert 0 < retry_after_ms <= 500  # one token at 2/s
    assert await customer(crm, "C-limited") is None

    # Honour Retry-After-Ms and retry, under a deadline; the first retry must be accepted.
    deadline = time.monotonic() + 5.0
    attempts = 0
    status = limited.status
    wait_ms = retry_after_ms
    while status == 429:
        assert time.monotonic() < deadline, "still rate limited after the deadline"
        await asyncio.sleep(wait_ms / 1000.0)
        attempts += 1
        response = await update(crm, update_body("C-limited"))
        status = response.status
        wait_ms = int(response.headers.get("Retry-After-Ms", "0"))
    assert status == 200
    assert attempts == 1

    counts = await stats(crm)
    assert counts["by_status"] == {"200": 4, "429": 1}
    assert counts["requests"] == 5
    assert len(await writes(crm)) == 4


async def test_retry_after_seconds_are_rounded_up(start_crm: StartCrm) -> None:
    crm = await start_crm(rate_limit_per_s=0.4, rate_limit_burst=1)
    assert (await create(crm, "C-1")).status == 201
    limited = await create(crm, "C-2")
    assert limited.status == 429
    retry_after_ms = int(limited.headers["Retry-After-Ms"])
    assert 2400 < retry_after_ms <= 2500
    assert limited.headers["Retry-After"] == "3"


async def test_auth_failures_do_not_spend_rate_limit_tokens(start_crm: StartCrm) -> None:
    crm = await start_crm(rate_limit_per_s=0.1, rate_limit_burst=1)
    for _ in range(3):
        assert (await crm.post("/v1/customers", json={"id": "C-1"})).status == 401
    assert (await create(crm, "C-1")).status == 201


async def test_rate_limit_can_be_set_at_run_time(crm: Client) -> None:
    for n in range(5):
        assert (await create(crm, f"C-{n}")).status == 201
    faults = await set_faults(crm, rate_limit_per_s=0.5, rate_limit_burst=2)
    assert (faults["rate_limit_per_s"], faults["rate_limit_burst"]) == (0.5, 2)
    assert (await create(crm, "C-10")).status == 201
    assert (await create(crm, "C-11")).status == 201
    assert (await create(crm, "C-12")).status == 429
    await set_faults(crm, rate_limit_per_s=0)
    assert (await create(crm, "C-12")).status == 201


# -- injected faults ---------------------------------------------------------------------------


async def test_error_rate_one_fails_everything_and_changes_nothing(start_crm: StartCrm) -> None:
    crm = await start_crm(random_seed=7)
    await create(crm, "C-1")
    await set_faults(crm, error_rate=1.0)

    seen: set[int] = set()
    for n in range(20):
        response = await update(crm, update_body("C-1", summary=f"try-{n}"), key=f"evt-{n}")
        body = await response.json()
        assert response.status in {500, 503}
        assert body["error"] in {"internal_error", "service_unavailable"}
        if response.status == 503:
            assert response.headers["Retry-After"] == "1"
        seen.add(response.status)
    assert (await create(crm, "C-2")).status in {500, 503}
    assert seen == {500, 503}

    await set_faults(crm, error_rate=0.0)
    record = await customer(crm, "C-1")
    assert record is not None
    assert record["version"] == 0
    assert await customer(crm, "C-2") is None
    assert [entry["operation"] for entry in await writes(crm)] == ["create"]
    counts = await stats(crm)
    assert counts["by_status"]["500"] + counts["by_status"]["503"] == 21


async def test_injected_timeout_hangs_then_504_and_changes_nothing(start_crm: StartCrm) -> None:
    crm = await start_crm(auto_create=True, timeout_rate=1.0, hang_s=0.2)
    started = time.monotonic()
    response = await update(crm, update_body("C-1"), key="evt-1")
    elapsed = time.monotonic() - started
    await assert_error(response, 504, "gateway_timeout")
    assert elapsed >= 0.2
    assert await customer(crm, "C-1") is None
    assert await writes(crm) == []


async def test_hanging_crm_makes_a_client_time_out(start_crm: StartCrm) -> None:
    crm = await start_crm(timeout_rate=1.0, hang_s=30)
    with pytest.raises(asyncio.TimeoutError):
        await crm.post(
            "/v1/customers",
            json={"id": "C-1"},
            headers=AUTH,
            timeout=aiohttp.ClientTimeout(total=0.2),
        )
    assert await customer(crm, "C-1") is None


async def test_outage_503_then_recovers(start_crm: StartCrm) -> None:
    crm = await start_crm(outage=True)
    response = await create(crm, "C-1")
    await assert_error(response, 503, "outage")
    assert response.headers["Retry-After"] == "1"
    # An outage answers before auth: the CRM is not there to check the token.
    await assert_error(await crm.post("/v1/customers", json={"id": "C-1"}), 503, "outage")
    assert await customer(crm, "C-1") is None

    faults = await set_faults(crm, outage=False)
    assert faults["outage"] is False
    assert (await create(crm, "C-1")).status == 201
    assert (await update(crm, update_body("C-1"))).status == 200


async def test_latency_is_injected(start_crm: StartCrm) -> None:
    crm = await start_crm(latency_ms_min=50, latency_ms_max=50)
    started = time.monotonic()
    response = await create(crm, "C-1")
    elapsed = time.monotonic() - started
    assert response.status == 201
    assert elapsed >= 0.050


async def test_latency_applies_to_the_crm_api_only(start_crm: StartCrm) -> None:
    crm = await start_crm(latency_ms_min=5_000, latency_ms_max=5_000)
    started = time.monotonic()
    await stats(crm)
    assert (await crm.get("/healthz")).status == 200
    assert time.monotonic() - started < 2.5


# -- faults, stats and reset APIs --------------------------------------------------------------


async def test_faults_endpoint_reads_and_partially_updates(start_crm: StartCrm) -> None:
    crm = await start_crm(error_rate=0.1, rate_limit_per_s=5)
    response = await crm.get("/_sim/faults")
    initial = await response.json()
    assert initial["error_rate"] == 0.1
    assert initial["rate_limit_per_s"] == 5
    assert initial["outage"] is False

    updated = await set_faults(crm, latency_ms_min=5, latency_ms_max=10)
    assert updated == {**initial, "latency_ms_min": 5, "latency_ms_max": 10}
    assert await (await crm.get("/_sim/faults")).json() == updated


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        pytest.param({"error_rte": 0.5}, "error_rte", id="unknown-field"),
        pytest.param({"error_rate": 1.5}, "error_rate", id="rate>1"),
        pytest.param({"timeout_rate": -0.1}, "timeout_rate", id="rate<0"),
        pytest.param({"outage": "yes"}, "outage", id="bool-as-str"),
        pytest.param({"rate_limit_burst": 0}, "rate_limit_burst", id="burst-0"),
        pytest.param({"latency_ms_min": 100}, "body", id="min>max"),
        pytest.param({"error_rate": 0.6, "timeout_rate": 0.6}, "body", id="rates>1"),
        pytest.param({"reject_customer_prefix": ""}, "reject_customer_prefix", id="empty-prefix"),
    ],
)
async def test_invalid_fault_changes_are_422_and_change_nothing(
    crm: Client, changes: dict[str, Any], field: str
) -> None:
    before = await (await crm.get("/_sim/faults")).json()
    response = await crm.post("/_sim/faults", json=changes)
    problem = await assert_error(response, 422, "invalid_faults")
    assert field in [item["field"] for item in problem["fields"]], problem
    assert await (await crm.get("/_sim/faults")).json() == before


async def test_fault_body_must_be_a_json_object(crm: Client) -> None:
    await assert_error(await crm.post("/_sim/faults", json=[1]), 422, "invalid_faults")
    response = await crm.post(
        "/_sim/faults", data=b"{", headers={"Content-Type": "application/json"}
    )
    await assert_error(response, 400, "bad_json")


async def test_stats_count_crm_requests_by_status(crm: Client) -> None:
    await create(crm, "C-1")
    await update(crm, update_body("C-1"), key="k")
    await update(crm, update_body("C-1"), key="k")
    await update(crm, update_body("C-2"))
    await crm.post("/v1/customers", json={"id": "C-3"})
    await crm.get("/healthz")
    await writes(crm)
    assert await stats(crm) == {
        "requests": 5,
        "by_status": {"200": 2, "201": 1, "401": 1, "404": 1},
        "replayed": 1,
    }


async def test_reset_forgets_everything(crm: Client) -> None:
    await create(crm, "C-1")
    assert (await update(crm, update_body("C-1"), key="evt-1")).status == 200

    response = await crm.post("/_sim/reset")
    assert response.status == 200
    assert await customer(crm, "C-1") is None
    assert await writes(crm) == []
    assert await stats(crm) == {"requests": 0, "by_status": {}, "replayed": 0}

    await create(crm, "C-1")
    again = await update(crm, update_body("C-1"), key="evt-1")
    assert again.status == 200
    assert "Idempotent-Replayed" not in again.headers


async def test_customer_ids_with_slashes_are_inspectable(crm: Client) -> None:
    await create(crm, "tenant/C-1")
    record = await customer(crm, "tenant/C-1")
    assert record is not None
    assert record["id"] == "tenant/C-1"


# -- settings ----------------------------------------------------------------------------------


async def test_settings_from_env_with_token_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    token_file = tmp_path / "crm-token"
    token_file.write_text("file-token-42\n", encoding="utf-8")
    monkeypatch.setenv("SEGSTREAM_CRM_SIM_TOKEN_FILE", str(token_file))
    monkeypatch.setenv("SEGSTREAM_CRM_SIM_HOST", "localhost")
    monkeypatch.setenv("SEGSTREAM_CRM_SIM_PORT", "9191")
    monkeypatch.setenv("SEGSTREAM_CRM_SIM_RATE_LIMIT_PER_S", "5")
    monkeypatch.setenv("SEGSTREAM_CRM_SIM_RATE_LIMIT_BURST", "7")
    monkeypatch.setenv("SEGSTREAM_CRM_SIM_LATENCY_MS_MAX", "3")
    monkeypatch.setenv("SEGSTREAM_CRM_SIM_AUTO_CREATE", "true")
    monkeypatch.setenv("SEGSTREAM_CRM_SIM_REJECT_CUSTOMER_PREFIX", "BAD-")

    settings = CrmSimulatorSettings()
    assert settings.bearer_token() == "file-token-42"
    assert (settings.host, settings.port) == ("localhost", 9191)
    assert (settings.rate_limit_per_s, settings.rate_limit_burst) == (5.0, 7)
    assert settings.latency_ms_max == 3.0
    assert settings.auto_create is True
    assert settings.reject_customer_prefix == "BAD-"
    assert settings.error_rate == 0.0
    assert settings.hang_s == 30.0

    client: Client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    try:
        wrong = await client.post("/v1/customers", json={"id": "C-1"}, headers=AUTH)
        assert wrong.status == 401
        right = await client.post(
            "/v1/customers/update",
            json=update_body("C-1"),
            headers={"Authorization": "Bearer file-token-42"},
        )
        assert right.status == 200  # auto_create from the environment
    finally:
        await client.close()


def test_token_from_env_is_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGSTREAM_CRM_SIM_TOKEN", "env-token-99")
    settings = CrmSimulatorSettings()
    assert settings.bearer_token() == "env-token-99"
    assert "env-token-99" not in repr(settings)
    assert "env-token-99" not in str(settings.model_dump())


def test_missing_token_is_a_clear_error() -> None:
    settings = CrmSimulatorSettings()
    with pytest.raises(CrmTokenError, match="SEGSTREAM_CRM_SIM_TOKEN"):
        settings.bearer_token()
    with pytest.raises(CrmTokenError):
        create_app(settings)


def test_ambiguous_unreadable_or_empty_token_is_an_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("  \n", encoding="utf-8")
    with pytest.raises(CrmTokenError, match="empty"):
        CrmSimulatorSettings(token_file=empty).bearer_token()
    with pytest.raises(CrmTokenError, match="cannot read"):
        CrmSimulatorSettings(token_file=tmp_path / "absent").bearer_token()
    with pytest.raises(CrmTokenError, match="not both"):
        CrmSimulatorSettings(token=SecretStr("a"), token_file=empty).bearer_token()


@pytest.mark.parametrize(
    "overrides",
    [
        {"error_rate": 1.5},
        {"timeout_rate": -1},
        {"latency_ms_min": 10, "latency_ms_max": 5},
        {"error_rate": 0.7, "timeout_rate": 0.7},
        {"rate_limit_burst": 0},
        {"port": 70000},
    ],
)
def test_invalid_settings_are_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        CrmSimulatorSettings(token=SecretStr("t"), **overrides)


# -- serving and logs --------------------------------------------------------------------------


async def test_serve_logs_its_url_never_its_token(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="sandbox.crm")
    settings = CrmSimulatorSettings(token=SecretStr(TOKEN), port=0)
    stop = asyncio.Event()
    server = asyncio.create_task(serve(settings, stop=stop))
    try:
        deadline = time.monotonic() + 10.0
        while not _records(caplog, "crm simulator listening"):
            assert time.monotonic() < deadline, "the simulator did not log its start"
            assert not server.done(), server
            await asyncio.sleep(0.01)
        url = _records(caplog, "crm simulator listening")[0].__dict__["url"]
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{url}/healthz") as health:
                assert health.status == 200
            async with session.post(
                f"{url}/v1/customers", json={"id": "C-1"}, headers=AUTH
            ) as created:
                assert created.status == 201
    finally:
        stop.set()
        await asyncio.wait_for(server, timeout=10.0)
    for record in caplog.records:
        assert TOKEN not in record.getMessage()
        assert TOKEN not in json.dumps(record.__dict__, default=str)


def _records(caplog: pytest.LogCaptureFixture, message: str) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.getMessage() == message]


async def test_shutdown_ends_hanging_requests_promptly(start_crm: StartCrm) -> None:
    crm = await start_crm(timeout_rate=1.0, hang_s=30)
    runner = crm.server.runner
    assert runner is not None
    assert runner.server is not None
    http_server = runner.server
    hanging = asyncio.create_task(crm.post("/v1/customers", json={"id": "C-1"}, headers=AUTH))
    deadline = time.monotonic() + 10.0
    while http_server.requests_count < 1:
        assert time.monotonic() < deadline, "the request never reached the simulator"
        await asyncio.sleep(0.01)

    started = time.monotonic()
    await crm.server.close()
    assert time.monotonic() - started < 6.0
    response = await asyncio.wait_for(hanging, timeout=10.0)
    await assert_error(response, 504, "gateway_timeout")


def test_log_lines_are_json() -> None:
    stream = io.StringIO()
    logger = logging.getLogger("sandbox.crm.test-json")
    logger.propagate = False
    logger.addHandler(json_handler(stream))
    logger.setLevel(logging.INFO)
    try:
        logger.info("crm simulator listening", extra={"url": "http://127.0.0.1:8090"})
    finally:
        logger.handlers.clear()
        logger.propagate = True
    line = json.loads(stream.getvalue())
    assert line["message"] == "crm simulator listening"
    assert line["url"] == "http://127.0.0.1:8090"
    assert line["level"] == "INFO"
    assert line["logger"] == "sandbox.crm.test-json"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d+\+00:00", line["ts"])


# -- the token bucket itself -------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_burst_wait_and_refill() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate_per_s=4, burst=2, clock=clock)
    assert bucket.try_acquire() == 0.0
    assert bucket.try_acquire() == 0.0
    assert bucket.try_acquire() == pytest.approx(0.25)
    clock.now += 0.1
    assert bucket.try_acquire() == pytest.approx(0.15)
    clock.now += 0.15
    assert bucket.try_acquire() == 0.0
    clock.now += 100
    assert [bucket.try_acquire() for _ in range(2)] == [0.0, 0.0]
    assert bucket.try_acquire() > 0.0


def test_token_bucket_unlimited_and_reconfigure() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate_per_s=0, burst=1, clock=clock)
    assert all(bucket.try_acquire() == 0.0 for _ in range(1000))
    bucket.reconfigure(rate_per_s=1, burst=3)
    assert [bucket.try_acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.try_acquire() == pytest.approx(1.0)
    bucket.reconfigure(rate_per_s=2, burst=3)
    assert bucket.try_acquire() == pytest.approx(0.5)
    clock.now += 10
    bucket.reconfigure(rate_per_s=2, burst=1)
    assert bucket.try_acquire() == 0.0
    assert bucket.try_acquire() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="burst"):
        bucket.reconfigure(rate_per_s=1, burst=0)


async def test_the_request_log_keeps_every_answer_in_order(start_crm: StartCrm) -> None:
    crm = await start_crm(rate_limit_per_s=1.0, rate_limit_burst=1)
    await create(crm, "C-1", key="c-1")
    throttled = await update(crm, update_body("C-1"), key="u-1")
    assert throttled.status == 429
    response = await crm.get("/_sim/requests")
    entries = (await response.json())["requests"]
    assert [(e["path"], e["status"], e["idempotency_key"]) for e in entries] == [
        ("/v1/customers", 201, "c-1"),
        ("/v1/customers/update", 429, "u-1"),
    ]
    assert entries[0]["received_at"] <= entries[1]["answered_at"]
    assert entries[0]["retry_after_ms"] is None
    assert entries[1]["retry_after_ms"] == int(throttled.headers["Retry-After-Ms"])


async def test_a_slow_customer_is_slow_and_the_others_are_not(crm: Client) -> None:
    await set_faults(crm, slow_customer_prefix="SLOW-", slow_customer_ms=300.0)
    for customer_id in ("SLOW-1", "FAST-1"):
        assert (await create(crm, customer_id)).status == 201
    started = time.monotonic()
    assert (await update(crm, update_body("FAST-1"))).status == 200
    fast = time.monotonic() - started
    started = time.monotonic()
    assert (await update(crm, update_body("SLOW-1"))).status == 200
    slow = time.monotonic() - started
    assert slow >= 0.3
    assert fast < 0.3
