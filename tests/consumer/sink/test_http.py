"""The HTTP sink against the CRM simulator application (a real server on a free port), in every
dialect the simulator speaks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from consumer.errors import SinkRejectedError, SinkUnavailableError, SinkUnusableError
from consumer.processing.lease import WriteLease
from consumer.ratelimit import GroupRateLimiter
from consumer.sink import CustomerUpdate
from consumer.sink.http import CrmHttpSink, says_key_in_use, update_body
from support.crm_app import (
    TOKEN,
    Client,
    StartCrm,
    base_url,
    create,
    crm_apps,
    customer,
    requests,
    set_faults,
    writes,
)

ATTRIBUTES = {"last_interaction_summary": "resolved-billing", "sentiment": 0.4}


@pytest.fixture
async def start_crm() -> AsyncIterator[StartCrm]:
    async with crm_apps() as start:
        yield start


def an_update(customer_id: str, key: str = "evt-1", **attributes: object) -> CustomerUpdate:
    return CustomerUpdate(
        customer_id=customer_id,
        attributes=attributes or ATTRIBUTES,
        last_updated=datetime(2026, 11, 28, 10, 15, tzinfo=UTC),
        idempotency_key=key,
        event_id=key,
    )


def sink_for(crm: Client, **kwargs: object) -> CrmHttpSink:
    return CrmHttpSink(base_url(crm), TOKEN, **kwargs)  # type: ignore[arg-type]


# -- a new customer, in both idempotency dialects ----------------------------------------------


@pytest.mark.parametrize("mode", ["executed", "successes"])
async def test_a_new_customer_is_created_with_its_attributes_once(
    start_crm: StartCrm, mode: str
) -> None:
    crm = await start_crm(idempotency_results=mode)
    sink = sink_for(crm)
    try:
        await sink.write(an_update("C-new"))
        # A retry of the same write (its acknowledgement was lost) changes nothing.
        await sink.write(an_update("C-new"))
    finally:
        await sink.close()
    record = await customer(crm, "C-new")
    assert record is not None
    assert record["attributes"] == {**ATTRIBUTES, "segmentation_tags": []}
    answered = [(r["path"], r["status"], r["replayed"]) for r in await requests(crm)]
    applied = [(w["operation"], w["idempotency_key"]) for w in await writes(crm)]
    first = [("/v1/customers/update", 404, False), ("/v1/customers", 201, False)]
    if mode == "executed":
        # The update's 404 is stored under its key and replayed: the retry creates again, and
        # gets the stored 201.
        assert answered == [
            *first,
            ("/v1/customers/update", 404, True),
            ("/v1/customers", 201, True),
        ]
        assert applied == [("create", "evt-1:create")]
    else:
        # Only successes are stored: the retried update executes, and (PATCH) sets the same values.
        assert answered == [*first, ("/v1/customers/update", 200, False)]
        assert applied == [("create", "evt-1:create"), ("update", "evt-1")]


class HeldAfterTheFirstRequest(WriteLease):
    """A lease that lapses once the first request of a write is out (the process froze right
    after it), until the test says the group confirmed the member again."""

    def __init__(self) -> None:
        super().__init__(validity_s=3600.0)
        self.asked = 0
        self.holding = asyncio.Event()
        self.confirmed = asyncio.Event()

    async def held(self) -> None:
        self.asked += 1
        if self.asked > 1:
            self.holding.set()
            await self.confirmed.wait()


async def test_the_create_after_a_404_waits_for_the_write_lease_like_the_first_request(
    start_crm: StartCrm,
) -> None:
    crm = await start_crm()
    sink = sink_for(crm)
    sink.lease = lease = HeldAfterTheFirstRequest()
    try:
        write = asyncio.ensure_future(sink.write(an_update("C-frozen")))
        await asyncio.wait_for(lease.holding.wait(), 10)
        # Held before the create went out: the CRM has seen the update's 404 only.
        assert [(r["path"], r["status"]) for r in await requests(crm)] == [
            ("/v1/customers/update", 404)
        ]
        lease.confirmed.set()
        await asyncio.wait_for(write, 10)
    finally:
        await sink.close()
    assert await customer(crm, "C-frozen") is not None


@pytest.mark.parametrize("mode", ["executed", "successes"])
async def test_a_customer_created_meanwhile_is_updated_under_a_key_of_its_own(
    start_crm: StartCrm, mode: str
) -> None:
    crm = await start_crm(idempotency_results=mode)
    update = an_update("C-race", sentiment=-0.3)
    # The sink's first attempt got its 404, then its connection broke; meanwhile another writer
    # created the customer.
    headers = {"Authorization": f"Bearer {TOKEN}", "Idempotency-Key": "evt-1"}
    first = await crm.post("/v1/customers/update", json=update_body(update), headers=headers)
    assert first.status == 404
    await create(crm, "C-race")
    sink = sink_for(crm)
    try:
        await sink.write(update)  # the retry
    finally:
        await sink.close()
    record = await customer(crm, "C-race")
    assert record is not None
    assert record["attributes"]["sentiment"] == -0.3
    keys = [w["idempotency_key"] for w in await writes(crm, "C-race")]
    # Stripe-like: the stored 404, the create's 409 "exists", the update under its own key.
    assert keys == ([None, "evt-1:update"] if mode == "executed" else [None, "evt-1"])


# -- a key in use ------------------------------------------------------------------------------


async def test_an_update_whose_key_is_still_executing_is_retried_not_rejected(
    start_crm: StartCrm,
) -> None:
    crm = await start_crm()
    await set_faults(crm, slow_customer_prefix="SLOW-", slow_customer_ms=800.0)
    await create(crm, "SLOW-1")
    impatient = sink_for(crm, timeout_s=0.2)
    try:
        with pytest.raises(SinkUnavailableError, match="did not answer"):
            await impatient.write(an_update("SLOW-1"))
        with pytest.raises(SinkUnavailableError) as in_use:
            await impatient.write(an_update("SLOW-1"))
        assert in_use.value.status == 409
        deadline = time.monotonic() + 10
        while True:  # what the writer does: back off, retry with the same key
            try:
                await impatient.write(an_update("SLOW-1"))
                break
            except SinkUnavailableError:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)
    finally:
        await impatient.close()
    assert [w["idempotency_key"] for w in await writes(crm, "SLOW-1")] == [None, "evt-1"]


def test_a_409_body_tells_key_in_use_from_customer_exists() -> None:
    assert says_key_in_use(b'{"error": "idempotency_key_in_use", "detail": "..."}')
    assert says_key_in_use(
        b'{"error": {"type": "idempotency_error", "code": "idempotency_key_in_use"}}'
    )
    assert says_key_in_use(
        b'{"type": "https://developer.example.com/idempotency",'
        b' "title": "A request is outstanding for this Idempotency-Key"}'
    )
    assert not says_key_in_use(b'{"error": "customer_exists", "detail": "already exists"}')
    assert not says_key_in_use(b"Conflict")
    assert not says_key_in_use(b'["idempotency_key_in_use"]')
    assert not says_key_in_use(b"\xff\xfe")


# -- throttling dialects -----------------------------------------------------------------------


async def test_retry_after_as_an_http_date_reaches_the_retry(start_crm: StartCrm) -> None:
    crm = await start_crm(
        retry_after_format="http-date", rate_limit_per_s=0.25, rate_limit_burst=1, auto_create=True
    )
    sink = sink_for(crm)
    try:
        await sink.write(an_update("C-1"))
        with pytest.raises(SinkUnavailableError) as throttled:
            await sink.write(an_update("C-2", key="evt-2"))
        assert throttled.value.status == 429
        assert throttled.value.retry_after is not None
        assert 3.0 < throttled.value.retry_after <= 5.0  # a token in 4 s, rounded up to a second
        await set_faults(crm, rate_limit_per_s=0, outage=True, error_retry_after_s=30)
        with pytest.raises(SinkUnavailableError) as unavailable:
            await sink.write(an_update("C-2", key="evt-2"))
        assert unavailable.value.status == 503
        assert unavailable.value.retry_after == pytest.approx(30.0, abs=1.1)
    finally:
        await sink.close()


@pytest.mark.parametrize("dialect", ["ratelimit", "x-ratelimit-delta", "x-ratelimit-epoch"])
async def test_every_answer_feeds_the_limiter(start_crm: StartCrm, dialect: str) -> None:
    crm = await start_crm(
        rate_limit_per_s=4, rate_limit_burst=4, rate_limit_headers=dialect, auto_create=True
    )
    limiter = GroupRateLimiter(1000.0, 100)
    limiter.set_share(1, 1)
    sink = sink_for(crm, pacer=limiter)
    try:
        for n in range(4):  # the whole bucket
            await sink.write(an_update(f"C-{n}", key=f"evt-{n}"))
        started = time.monotonic()
        waited = await limiter.acquire()  # none left: wait for the CRM's next token or reset
    finally:
        await sink.close()
    assert waited > 0.1
    assert time.monotonic() - started == pytest.approx(waited, abs=0.05)
    if dialect == "ratelimit":
        assert limiter.current_rate_per_s == pytest.approx(4.0)  # q=4;w=1, below the 1000/s
    assert [r["status"] for r in await requests(crm)] == [200] * 4


# -- misconfiguration --------------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirected_write_is_unusable_never_followed(
    start_crm: StartCrm, status: int
) -> None:
    crm = await start_crm(redirect_status=status)
    sink = sink_for(crm)
    try:
        with pytest.raises(SinkUnusableError, match="redirected") as caught:
            await sink.write(an_update("C-1"))
    finally:
        await sink.close()
    assert caught.value.status == status
    assert [r["path"] for r in await requests(crm)] == ["/v1/customers/update"]
    assert await writes(crm) == []


async def test_a_rejected_payload_is_rejected(start_crm: StartCrm) -> None:
    crm = await start_crm(reject_customer_prefix="BAD-", auto_create=True)
    sink = sink_for(crm)
    try:
        with pytest.raises(SinkRejectedError) as caught:
            await sink.write(an_update("BAD-1"))
    finally:
        await sink.close()
    assert caught.value.status == 422
