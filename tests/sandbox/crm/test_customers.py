"""The CRM simulator's customer API as a client sees it: auth, create, update, validation."""

from __future__ import annotations

import io
import json
import re
from typing import Any

import pytest

from support.crm_app import (
    AUTH,
    TOKEN,
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


# -- payload validation ------------------------------------------------------------------------


INVALID_UPDATES = [
    pytest.param(update_body("C-1", sentiment=1.5), "attributes.sentiment", id="sentiment>1"),
    pytest.param(update_body("C-1", sentiment=-1.01), "attributes.sentiment", id="sentiment<-1"),
    pytest.param(update_body("C-1", sentiment="0.4"), "attributes.sentiment", id="sentiment-str"),
    pytest.param(update_body("C-1", sentiment=True), "attributes.sentiment", id="sentiment-bool"),
    pytest.param({k: v for k, v in update_body("C-1").items() if k != "id"}, "id", id="missing-id"),
    pytest.param(update_body(""), "id", id="empty-id"),
    pytest.param(update_body("   "), "id", id="blank-id"),
    pytest.param(
        {k: v for k, v in update_body("C-1").items() if k != "last_updated"},
        "last_updated",
        id="missing-last-updated",
    ),
    pytest.param(update_body("C-1", last_updated="yesterday"), "last_updated", id="bad-timestamp"),
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
    pytest.param({**update_body("C-1"), "attributes": None}, "attributes", id="attributes-null"),
    pytest.param(
        update_body("C-1", tags=["ok", 3]), "attributes.segmentation_tags.1", id="tag-not-str"
    ),
    pytest.param({**update_body("C-1"), "extra": 1}, "extra", id="unknown-field"),
    pytest.param([update_body("C-1")], "body", id="not-an-object"),
]
# The cases about attributes, which a create carrying attributes must refuse the same way.
INVALID_ATTRIBUTES = [
    case for case in INVALID_UPDATES if str(case.values[1]).startswith("attributes")
]


@pytest.mark.parametrize(("body", "field"), INVALID_UPDATES)
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
    assert body["detail"] == "customer 'BAD-1' rejected by a CRM business rule"
    record = await customer(crm, "BAD-1")
    assert record is not None
    assert record["version"] == 0
    assert [entry["operation"] for entry in await writes(crm, "BAD-1")] == ["create"]
    # Others pass; and the prefix can be lifted at run time.
    await create(crm, "GOOD-1")
    assert (await update(crm, update_body("GOOD-1"))).status == 200
    await set_faults(crm, reject_customer_prefix=None)
    assert (await update(crm, update_body("BAD-1"), key="evt-bad-2")).status == 200


@pytest.mark.parametrize(("body", "field"), INVALID_ATTRIBUTES)
async def test_a_create_checks_attributes_as_strictly_as_an_update(
    crm: Client, body: dict[str, Any], field: str
) -> None:
    response = await create(crm, "C-1", attributes=body["attributes"])
    problem = await assert_error(response, 422, "invalid_payload")
    assert field in [item["field"] for item in problem["fields"]], problem
    assert await customer(crm, "C-1") is None
    assert await writes(crm) == []


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
