"""The simulator's rate limit and how it words it: Retry-After forms, rate-limit headers."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import http_sf
import pytest

from sandbox.crm.dialect import rate_limit_headers
from sandbox.crm.ratelimit import TokenBucket
from support.crm_app import (
    Client,
    StartCrm,
    assert_error,
    create,
    customer,
    requests,
    set_faults,
    stats,
    update,
    update_body,
    writes,
)

ISO_UTC_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


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


# -- Retry-After as an HTTP-date (RFC 9110 §10.2.3) --------------------------------------------


def _seconds_until(http_date: str) -> float:
    return (parsedate_to_datetime(http_date) - datetime.now(UTC)).total_seconds()


async def test_retry_after_can_be_an_http_date_on_429(start_crm: StartCrm) -> None:
    crm = await start_crm(rate_limit_per_s=0.4, rate_limit_burst=1, retry_after_format="http-date")
    assert (await create(crm, "C-1")).status == 201
    limited = await create(crm, "C-2")
    await assert_error(limited, 429, "rate_limited")
    assert "Retry-After-Ms" not in limited.headers
    # The next token comes in 2.5 s; the date is rounded up to the next whole second.
    assert 2.3 < _seconds_until(limited.headers["Retry-After"]) <= 3.5
    [_, logged] = await requests(crm)
    assert 2300 < logged["retry_after_ms"] <= 3500


async def test_retry_after_can_be_an_http_date_on_503(start_crm: StartCrm) -> None:
    crm = await start_crm(outage=True, retry_after_format="http-date", error_retry_after_s=5)
    response = await create(crm, "C-1")
    await assert_error(response, 503, "outage")
    assert 4.0 < _seconds_until(response.headers["Retry-After"]) <= 6.0
    await set_faults(crm, outage=False, error_rate=1.0, retry_after_format="seconds")
    statuses = set()
    while statuses != {500, 503}:  # half the injected errors are 503s, with Retry-After
        response = await create(crm, "C-1")
        statuses.add(response.status)
        if response.status == 503:
            assert response.headers["Retry-After"] == "5"


# -- rate-limit headers ------------------------------------------------------------------------


def _rate_limit_items(value: str) -> dict[str, dict[str, Any]]:
    return {
        str(name): dict(params) for name, params in http_sf.parse(value.encode(), tltype="list")
    }


async def test_ietf_ratelimit_headers_describe_the_bucket(start_crm: StartCrm) -> None:
    crm = await start_crm(rate_limit_per_s=2, rate_limit_burst=3, rate_limit_headers="ratelimit")
    seen = []
    for n in range(4):
        response = await create(crm, f"C-{n}")
        policy = _rate_limit_items(response.headers["RateLimit-Policy"])
        limit = _rate_limit_items(response.headers["RateLimit"])
        # 2/s with a bucket of 3: refilled from empty in 2 s, so 4 requests per 2 s.
        assert policy == {"default": {"q": 4, "w": 2}}
        assert limit["default"]["t"] == 1  # a token every 0.5 s
        seen.append((response.status, limit["default"]["r"]))
    assert seen == [(201, 2), (201, 1), (201, 0), (429, 0)]
    assert "X-RateLimit-Remaining" not in response.headers


@pytest.mark.parametrize("dialect", ["x-ratelimit-delta", "x-ratelimit-epoch"])
async def test_x_ratelimit_headers_count_down_and_reset_when_full(
    start_crm: StartCrm, dialect: str
) -> None:
    crm = await start_crm(rate_limit_per_s=1, rate_limit_burst=3, rate_limit_headers=dialect)
    remaining = []
    for n in range(4):
        response = await create(crm, f"C-{n}")
        assert response.headers["X-RateLimit-Limit"] == "3"
        remaining.append(int(response.headers["X-RateLimit-Remaining"]))
        reset = int(response.headers["X-RateLimit-Reset"])
        # Full again after (3 - tokens) s at 1/s: 1 s after the first request, 3 s when empty.
        full_in = reset - time.time() if dialect == "x-ratelimit-epoch" else reset
        assert 0 < full_in <= 4.0
    assert remaining == [2, 1, 0, 0]
    assert response.status == 429
    assert "RateLimit" not in response.headers


@pytest.mark.parametrize("dialect", ["ratelimit", "x-ratelimit-delta", "x-ratelimit-epoch"])
async def test_no_rate_limit_headers_without_a_limit_or_before_auth(
    start_crm: StartCrm, dialect: str
) -> None:
    crm = await start_crm(rate_limit_headers=dialect)
    unlimited = await create(crm, "C-1")
    assert unlimited.status == 201
    await set_faults(crm, rate_limit_per_s=5)
    refused = await crm.post("/v1/customers", json={"id": "C-2"})
    assert refused.status == 401
    for response in (unlimited, refused):
        assert not [name for name in response.headers if "ratelimit" in name.lower()]
    counted = await update(crm, update_body("C-404"))
    assert counted.status == 404
    assert [name for name in counted.headers if "ratelimit" in name.lower()]


def test_ratelimit_header_values_in_each_dialect() -> None:
    bucket = {"tokens": 2.5, "rate_per_s": 4.0, "burst": 10}
    assert rate_limit_headers("none", **bucket) == {}
    assert rate_limit_headers("ratelimit", **bucket) == {
        # Full from empty in 2.5 s -> a 3 s window holding 12 requests at 4/s.
        "RateLimit-Policy": '"default";q=12;w=3',
        "RateLimit": '"default";r=2;t=1',
    }
    assert rate_limit_headers("x-ratelimit-delta", **bucket) == {
        "X-RateLimit-Limit": "10",
        "X-RateLimit-Remaining": "2",
        "X-RateLimit-Reset": "2",  # 7.5 tokens at 4/s: 1.875 s, rounded up
    }
    epoch = rate_limit_headers("x-ratelimit-epoch", **bucket, now=1_800_000_000.5)
    assert epoch["X-RateLimit-Reset"] == "1800000003"
    slow = rate_limit_headers("ratelimit", tokens=0.2, rate_per_s=0.25, burst=1)
    assert slow == {"RateLimit-Policy": '"default";q=1;w=4', "RateLimit": '"default";r=0;t=4'}
    assert rate_limit_headers("ratelimit", tokens=3, rate_per_s=0.0, burst=1) == {}
