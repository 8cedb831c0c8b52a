"""Injected faults, the moved-endpoint switch, and the /_sim inspection and fault APIs."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

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

ISO_UTC_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


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
        pytest.param({"redirect_status": 200}, "redirect_status", id="redirect-200"),
        pytest.param({"redirect_status": "301"}, "redirect_status", id="redirect-as-str"),
        pytest.param({"idempotency_results": "none"}, "idempotency_results", id="idem-mode"),
        pytest.param({"retry_after_format": "rfc850"}, "retry_after_format", id="retry-form"),
        pytest.param({"rate_limit_headers": "github"}, "rate_limit_headers", id="rl-dialect"),
        pytest.param({"error_retry_after_s": 0}, "error_retry_after_s", id="retry-after-0"),
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
        "executing": 0,
    }


async def test_reset_forgets_everything(crm: Client) -> None:
    await create(crm, "C-1")
    assert (await update(crm, update_body("C-1"), key="evt-1")).status == 200

    response = await crm.post("/_sim/reset")
    assert response.status == 200
    assert await customer(crm, "C-1") is None
    assert await writes(crm) == []
    assert await stats(crm) == {"requests": 0, "by_status": {}, "replayed": 0, "executing": 0}

    await create(crm, "C-1")
    again = await update(crm, update_body("C-1"), key="evt-1")
    assert again.status == 200
    assert "Idempotent-Replayed" not in again.headers


async def test_customer_ids_with_slashes_are_inspectable(crm: Client) -> None:
    await create(crm, "tenant/C-1")
    record = await customer(crm, "tenant/C-1")
    assert record is not None
    assert record["id"] == "tenant/C-1"


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


# -- a moved endpoint --------------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_moved_endpoint_answers_3xx_before_anything_else(
    start_crm: StartCrm, status: int
) -> None:
    crm = await start_crm(redirect_status=status, outage=True)
    for headers in (AUTH, {}):
        response = await crm.post(
            "/v1/customers/update?x=1",
            json=update_body("C-1"),
            headers=headers,
            allow_redirects=False,
        )
        assert response.status == status
        assert response.headers["Location"] == "/_sim/moved/v1/customers/update?x=1"
    assert await writes(crm) == []


async def test_a_client_that_follows_a_301_turns_its_post_into_a_get_that_writes_nothing(
    start_crm: StartCrm,
) -> None:
    """The trap issue 8 §2 describes: aiohttp follows the 301 by default, as a GET, and the
    landing page answers 200, which a naive client counts as written."""
    crm = await start_crm(redirect_status=301)
    followed = await update(crm, update_body("C-1"))
    assert followed.status == 200
    assert followed.method == "GET"
    assert [hop.status for hop in followed.history] == [301]
    assert await customer(crm, "C-1") is None
    assert await writes(crm) == []
    await set_faults(crm, redirect_status=None)
    await assert_error(await update(crm, update_body("C-1")), 404, "customer_not_found")
