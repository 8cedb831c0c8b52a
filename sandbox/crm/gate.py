"""Everything a ``/v1`` request meets before the CRM handles it, and what is added to its answer.

In order: a moved endpoint (3xx), an outage (503), bearer auth (401), the token bucket (429),
then one draw deciding between an injected timeout (hang, then 504), an injected error (503/500)
or the real handling. Nothing here changes a customer, and nothing here is stored under an
Idempotency-Key: these are answers given before the endpoint starts executing. Every answer past
auth carries the rate-limit headers of the dialect in force (sandbox/crm/dialect.py). Each
request, whatever its answer, is counted and logged for ``/_sim/stats`` and ``/_sim/requests``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Final

from aiohttp import web

from sandbox.crm.dialect import RETRY_AFTER, RETRY_AFTER_MS, rate_limit_headers, retry_after_headers
from sandbox.crm.faults import Faults
from sandbox.crm.idempotency import IDEMPOTENT_REPLAYED
from sandbox.crm.responses import Handler, error_response, from_http_exception
from sandbox.crm.state import STATE, SimulatorState
from sandbox.crm.store import RequestEntry, iso_utc_ms

# Where a moved /v1 points: a stand-in for the new location, answering GET with a page.
MOVED_PREFIX: Final = "/_sim/moved"

_log = logging.getLogger(__name__)


def _is_crm_path(path: str) -> bool:
    return path == "/v1" or path.startswith("/v1/")


@web.middleware
async def crm_gate(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not _is_crm_path(request.path):
        return await handler(request)
    state = request.app[STATE]
    started = time.monotonic()
    received_at = iso_utc_ms()
    try:
        response = await _through_gate(request, handler, state)
    except ConnectionResetError:
        # The client went away while sending its body (a consumer cancelling on shutdown): no
        # request was made, so none is counted, and nobody is there to read an answer.
        _log.debug("client disconnected mid-request", extra={"path": request.path})
        raise
    except Exception:
        _log.exception("crm simulator handler failed", extra={"path": request.path})
        response = error_response(500, "internal_error", "the simulator failed unexpectedly")
    replayed = response.headers.get(IDEMPOTENT_REPLAYED) == "true"
    state.store.count(response.status, replayed=replayed)
    state.store.log_request(
        RequestEntry(
            received_at=received_at,
            answered_at=iso_utc_ms(),
            path=request.path,
            status=response.status,
            idempotency_key=request.headers.get("Idempotency-Key"),
            replayed=replayed,
            retry_after_ms=told_to_wait_ms(response),
        )
    )
    _log.debug(
        "crm request",
        extra={
            "method": request.method,
            "path": request.path,
            "status": response.status,
            "replayed": replayed,
            "duration_ms": round((time.monotonic() - started) * 1000, 3),
        },
    )
    return response


def told_to_wait_ms(response: web.StreamResponse) -> int | None:
    """How long the answer told the client to wait, in ms, whichever Retry-After form it used."""
    precise = response.headers.get(RETRY_AFTER_MS)
    if precise is not None:
        return int(precise)
    value = response.headers.get(RETRY_AFTER)
    if value is None:
        return None
    if value.isdigit():
        return int(value) * 1000
    when = parsedate_to_datetime(value)
    return max(0, round((when - datetime.now(UTC)).total_seconds() * 1000))


async def _through_gate(
    request: web.Request, handler: Handler, state: SimulatorState
) -> web.StreamResponse:
    faults = state.faults
    refused = _refuse_before_auth(request, faults) or _check_auth(request, state, faults)
    if refused is not None:
        return refused
    response: web.StreamResponse | None = _throttled(state, faults) or await _inject_faults(
        state, faults
    )
    if response is None:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            response = from_http_exception(exc)
    response.headers.update(
        rate_limit_headers(
            faults.rate_limit_headers,
            tokens=state.bucket.available(),
            rate_per_s=state.bucket.rate_per_s,
            burst=state.bucket.burst,
        )
    )
    return response


def _refuse_before_auth(request: web.Request, faults: Faults) -> web.Response | None:
    """A moved endpoint, then an outage: answers given before anyone looks at the token."""
    if faults.redirect_status is not None:
        # The way an API that moved answers (RFC 9110 §15.4): 301/302/303 let clients turn a POST
        # into a GET (aiohttp does), 307/308 require the method to be kept.
        return error_response(
            faults.redirect_status,
            "moved",
            "this endpoint has moved",
            headers={"Location": MOVED_PREFIX + request.path_qs},
        )
    if faults.outage:
        return error_response(
            503,
            "outage",
            "the CRM is unavailable (simulated outage)",
            headers=retry_after_headers(faults.error_retry_after_s, faults.retry_after_format),
        )
    return None


def _throttled(state: SimulatorState, faults: Faults) -> web.Response | None:
    wait_s = state.bucket.try_acquire()
    if wait_s <= 0.0:
        return None
    headers = retry_after_headers(wait_s, faults.retry_after_format)
    return error_response(
        429, "rate_limited", f"rate limit exceeded; retry in {wait_s:.3f} s", headers=headers
    )


async def _inject_faults(state: SimulatorState, faults: Faults) -> web.Response | None:
    """One draw deciding between a timeout, an error, or going through."""
    roll = state.rng.random()
    if roll < faults.timeout_rate:
        await _hang(state, faults.hang_s)
        return error_response(504, "gateway_timeout", "the CRM did not answer in time")
    if roll < faults.timeout_rate + faults.error_rate:
        if state.rng.random() < 0.5:
            return error_response(
                503,
                "service_unavailable",
                "the CRM is temporarily unavailable (injected error)",
                headers=retry_after_headers(faults.error_retry_after_s, faults.retry_after_format),
            )
        return error_response(500, "internal_error", "the CRM failed (injected error)")
    return None


def _check_auth(request: web.Request, state: SimulatorState, faults: Faults) -> web.Response | None:
    header = request.headers.get("Authorization")
    if header is None:
        return error_response(
            401,
            "unauthorized",
            "missing Authorization header; send Authorization: Bearer <token>",
            headers={"WWW-Authenticate": 'Bearer realm="crm-simulator"'},
        )
    scheme, _, credentials = header.partition(" ")
    presented = credentials.strip().encode("utf-8")
    # Compare in constant time, and always compare, so a timing probe learns nothing.
    matches = hmac.compare_digest(presented, state.token)
    if scheme.lower() != "bearer" or not matches:
        return error_response(
            401,
            "unauthorized",
            "invalid bearer token",
            headers={"WWW-Authenticate": 'Bearer realm="crm-simulator", error="invalid_token"'},
        )
    if faults.revoke_token:
        return error_response(
            401,
            "unauthorized",
            "the bearer token has been revoked",
            headers={"WWW-Authenticate": 'Bearer realm="crm-simulator", error="invalid_token"'},
        )
    return None


async def _hang(state: SimulatorState, hang_s: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(hang_s):
            await state.stopping.wait()
