"""The simulator's Idempotency-Key layer, in both dialects (sandbox/crm/idempotency.py)."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from support.crm_app import (
    AUTH,
    Client,
    StartCrm,
    assert_error,
    create,
    customer,
    set_faults,
    stats,
    update,
    update_body,
    writes,
)


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


async def test_a_404_is_stored_and_replayed_as_stripe_does(crm: Client) -> None:
    """Stripe keeps the first result of a request that began executing, errors included: the
    update after a create, resent under the first key, gets the stored 404 again."""
    body = update_body("C-missing")
    await assert_error(await update(crm, body, key="evt-404"), 404, "customer_not_found")
    assert (await create(crm, "C-missing", key="evt-404:create")).status == 201

    retried = await update(crm, body, key="evt-404")
    await assert_error(retried, 404, "customer_not_found")
    assert retried.headers["Idempotent-Replayed"] == "true"
    assert [w["operation"] for w in await writes(crm, "C-missing")] == ["create"]
    # A new key is a new request: it executes.
    assert (await update(crm, body, key="evt-404:update")).status == 200


async def test_in_successes_mode_a_404_leaves_the_key_free(start_crm: StartCrm) -> None:
    crm = await start_crm(idempotency_results="successes")
    body = update_body("C-missing")
    await assert_error(await update(crm, body, key="evt-404"), 404, "customer_not_found")
    assert (await create(crm, "C-missing", key="evt-404:create")).status == 201

    retried = await update(crm, body, key="evt-404")
    assert retried.status == 200
    assert "Idempotent-Replayed" not in retried.headers
    again = await update(crm, body, key="evt-404")
    assert again.status == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert [w["operation"] for w in await writes(crm, "C-missing")] == ["create", "update"]


@pytest.mark.parametrize(("mode", "stored"), [("executed", True), ("successes", False)])
async def test_errors_from_executing_are_stored_only_in_executed_mode(
    start_crm: StartCrm, mode: str, stored: bool
) -> None:
    crm = await start_crm(idempotency_results=mode, reject_customer_prefix="BAD-")
    assert (await create(crm, "C-1")).status == 201
    exists = await create(crm, "C-1", key="create-again")
    await assert_error(exists, 409, "customer_exists")
    rejected = await update(crm, update_body("BAD-1"), key="rejected")
    await assert_error(rejected, 422, "rejected")

    await set_faults(crm, reject_customer_prefix=None)
    assert (await create(crm, "BAD-1")).status == 201
    for path, key, payload in (
        ("/v1/customers", "create-again", {"id": "C-1"}),
        ("/v1/customers/update", "rejected", update_body("BAD-1")),
    ):
        again = await crm.post(path, json=payload, headers={**AUTH, "Idempotency-Key": key})
        assert again.headers.get("Idempotent-Replayed") == ("true" if stored else None)
    # Re-executed in "successes" mode: the reject rule was lifted, so the update applied.
    applied = [w["idempotency_key"] for w in await writes(crm, "BAD-1")]
    assert applied == ([None] if stored else [None, "rejected"])


@pytest.mark.parametrize("mode", ["executed", "successes"])
@pytest.mark.parametrize(
    ("data", "content_type", "status"),
    [
        pytest.param(b"{not json", "application/json", 400, id="bad-json"),
        pytest.param(b'{"id": "C-1"}', "text/plain", 415, id="wrong-content-type"),
        pytest.param(
            json.dumps(update_body("C-1", sentiment=2.0)).encode(),
            "application/json",
            422,
            id="invalid-payload",
        ),
    ],
)
async def test_a_request_that_fails_validation_stores_nothing(
    start_crm: StartCrm, mode: str, data: bytes, content_type: str, status: int
) -> None:
    """Stripe: "If incoming parameters fail validation [...] we don't save the idempotent result
    because no API endpoint initiates execution." The same key then carries a valid request."""
    crm = await start_crm(idempotency_results=mode)
    await create(crm, "C-1")
    headers = {**AUTH, "Idempotency-Key": "evt-1", "Content-Type": content_type}
    refused = await crm.post("/v1/customers/update", data=data, headers=headers)
    assert refused.status == status
    fixed = await update(crm, update_body("C-1"), key="evt-1")
    assert fixed.status == 200
    assert "Idempotent-Replayed" not in fixed.headers


async def test_answers_before_execution_are_not_stored(start_crm: StartCrm) -> None:
    """5xx, 429 and 401 come from the gate, before the endpoint executes: a retry executes."""
    crm = await start_crm(error_rate=1.0, random_seed=3)
    body = update_body("C-1")
    assert (await update(crm, body, key="evt-1")).status in {500, 503}
    await set_faults(crm, error_rate=0.0, rate_limit_per_s=0.01, rate_limit_burst=1)
    await create(crm, "C-1")
    assert (await update(crm, body, key="evt-1")).status == 429
    await set_faults(crm, rate_limit_per_s=0, revoke_token=True)
    assert (await update(crm, body, key="evt-1")).status == 401

    await set_faults(crm, revoke_token=False)
    retried = await update(crm, body, key="evt-1")
    assert retried.status == 200
    assert "Idempotent-Replayed" not in retried.headers
    assert [entry["idempotency_key"] for entry in await writes(crm, "C-1")] == [None, "evt-1"]


async def _until_executing(crm: Client, count: int) -> None:
    deadline = asyncio.get_running_loop().time() + 10.0
    while (await stats(crm))["executing"] < count:
        assert asyncio.get_running_loop().time() < deadline, "the request never began executing"
        await asyncio.sleep(0.01)


async def test_a_key_in_use_gets_409_and_its_result_after(start_crm: StartCrm) -> None:
    """IETF draft-ietf-httpapi-idempotency-key-header §2.7 and Stripe's idempotency_key_in_use:
    a request whose key another request is still executing gets 409, and nothing is stored for
    it; once the first finishes, its result is replayed."""
    crm = await start_crm()
    await create(crm, "C-1")
    await set_faults(crm, latency_ms_min=1_000, latency_ms_max=1_000)
    body = update_body("C-1")
    first = asyncio.create_task(update(crm, body, key="evt-1"))
    await _until_executing(crm, 1)

    busy = await update(crm, body, key="evt-1")
    await assert_error(busy, 409, "idempotency_key_in_use")
    # The key is held whatever the payload or endpoint: it is one request being retried.
    other = await update(crm, update_body("C-1", sentiment=-0.5), key="evt-1")
    await assert_error(other, 409, "idempotency_key_in_use")
    await assert_error(await create(crm, "C-2", key="evt-1"), 409, "idempotency_key_in_use")

    assert (await first).status == 200
    after = await update(crm, body, key="evt-1")
    assert after.status == 200
    assert after.headers["Idempotent-Replayed"] == "true"
    assert [w["idempotency_key"] for w in await writes(crm, "C-1")] == [None, "evt-1"]
    assert (await stats(crm))["executing"] == 0


async def test_a_client_that_gives_up_does_not_stop_the_execution(start_crm: StartCrm) -> None:
    """A client timing out does not cancel the CRM's work (aiohttp keeps running the handler, as
    a real server keeps its transaction): the key stays in use, then holds the result."""
    crm = await start_crm()
    await create(crm, "C-1")
    await set_faults(crm, latency_ms_min=800, latency_ms_max=800)
    body = update_body("C-1")
    with pytest.raises(TimeoutError):
        await update(crm, body, key="evt-1", timeout=aiohttp.ClientTimeout(total=0.2))
    await assert_error(await update(crm, body, key="evt-1"), 409, "idempotency_key_in_use")
    deadline = asyncio.get_running_loop().time() + 10.0
    while (await stats(crm))["executing"]:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)
    replay = await update(crm, body, key="evt-1")
    assert replay.status == 200
    assert replay.headers["Idempotent-Replayed"] == "true"


@pytest.mark.parametrize("key", ["", "   ", "x" * 256])
async def test_malformed_idempotency_key_is_400(crm: Client, key: str) -> None:
    await create(crm, "C-1")
    response = await crm.post(
        "/v1/customers/update",
        data=json.dumps(update_body("C-1")),
        headers={**AUTH, "Content-Type": "application/json", "Idempotency-Key": key},
    )
    await assert_error(response, 400, "bad_idempotency_key")
