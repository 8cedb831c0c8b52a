"""The CRM's Idempotency-Key layer: one execution per key, its result replayed, per dialect.

A request with a key goes through, in this order:

1. The key must be 1 to 255 printable characters (Stripe's limit), else 400.
2. The body must parse and validate, else 400/415/422. Nothing is stored for these: as Stripe
   says, "we save results only after the execution of an endpoint begins. If incoming parameters
   fail validation, or the request conflicts with another that's executing concurrently, we
   don't save the idempotent result because no API endpoint initiates execution"
   (docs.stripe.com/api/idempotent_requests). The gate's 401/429/5xx come before this, so they
   are never stored either.
3. A key another request is still executing gets ``409 idempotency_key_in_use``: the IETF draft
   (draft-ietf-httpapi-idempotency-key-header-07 §2.7: "If the request is retried, while the
   original request is still being processed, the resource server SHOULD reply with an HTTP 409
   status code") and Stripe's error code of that name. Nothing is stored for it.
4. A key with a stored result is answered from it (``Idempotent-Replayed: true``) if the request
   is the same (method, path and body; key order and spacing aside), else ``422
   idempotency_key_reused`` (the draft's status for a key reused with another payload).
5. Otherwise the endpoint executes (holding the key; the injected latency is spent here) and its
   result is stored according to ``idempotency_results``:

   - ``executed`` (the default): the first result, whatever its status, a 404 or 409 included:
     "Stripe saves the status code and body of the first request made with a given idempotency
     key after endpoint execution begins. Retries with the same key return the saved response,
     including 500 errors" (same page). A client that creates a missing customer and then
     resends the update under the same key gets the stored 404 again.
   - ``successes``: only 2xx results; an error leaves the key free, so a retry executes again.
     Deel's API caches "the successful response (2xx status codes only)"
     (developer.deel.com/api/idempotency), and Salesforce's UI API stores "the response for a
     server data mutation operation" (its "Idempotent Record Writes" guide): a 404 mutates
     nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

from aiohttp import web

from sandbox.crm.responses import error_response
from sandbox.crm.state import STATE
from sandbox.crm.store import IdempotencyRecord, JsonObject, fingerprint

IDEMPOTENCY_KEY: Final = "Idempotency-Key"
IDEMPOTENT_REPLAYED: Final = "Idempotent-Replayed"
# Stripe's limit; a longer key is a client bug, not an identifier.
MAX_IDEMPOTENCY_KEY_LENGTH: Final = 255

Outcome = tuple[int, JsonObject]
Parsed = TypeVar("Parsed")


def idempotency_key(request: web.Request) -> str | web.Response | None:
    """The request's key, None without one, or the 400 that refuses a malformed one."""
    key = request.headers.get(IDEMPOTENCY_KEY)
    if key is None:
        return None
    if not key.strip() or len(key) > MAX_IDEMPOTENCY_KEY_LENGTH or not key.isprintable():
        return error_response(
            400,
            "bad_idempotency_key",
            f"{IDEMPOTENCY_KEY} must be 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} printable characters",
        )
    return key


async def run_once(
    request: web.Request,
    key: str | None,
    payload: JsonObject,
    parsed: Parsed,
    execute: Callable[[Parsed, JsonObject, str | None], Awaitable[Outcome]],
) -> web.Response:
    """Steps 3 to 5 of the module docstring for a request whose key and body were checked."""
    state = request.app[STATE]
    store = state.store
    digest = fingerprint(request.method, request.path, payload)
    if key is not None:
        if store.executing(key):
            return error_response(
                409,
                "idempotency_key_in_use",
                "another request with this Idempotency-Key is still being processed; "
                "retry later with the same key",
            )
        seen = store.idempotency_record(key)
        if seen is not None:
            if seen.fingerprint != digest:
                return error_response(
                    422,
                    "idempotency_key_reused",
                    "Idempotency-Key reused with a different payload",
                )
            return web.json_response(
                seen.body, status=seen.status, headers={IDEMPOTENT_REPLAYED: "true"}
            )
        store.begin_executing(key)

    async def execute_and_store() -> Outcome:
        try:
            outcome = await execute(parsed, payload, key)
            if key is not None and _stored(state.faults.idempotency_results, outcome[0]):
                record = IdempotencyRecord(fingerprint=digest, status=outcome[0], body=outcome[1])
                store.remember(key, record)
            return outcome
        finally:
            if key is not None:
                store.end_executing(key)

    # A client that disconnects does not undo what the CRM began (a real server finishes its
    # transaction): the execution runs to its end and stores its result even if this handler is
    # cancelled (aiohttp's test server cancels handlers on disconnect; its AppRunner does not).
    execution = asyncio.ensure_future(execute_and_store())
    state.executions.add(execution)
    execution.add_done_callback(state.executions.discard)
    status, body = await asyncio.shield(execution)
    return web.json_response(body, status=status)


def _stored(mode: str, status: int) -> bool:
    if mode == "successes":
        return 200 <= status < 300
    return True


async def spend_latency(request: web.Request, extra_ms: float = 0.0) -> None:
    """The injected execution time (``latency_ms_min..max``) plus ``extra_ms``."""
    state = request.app[STATE]
    faults = state.faults
    delay_ms = extra_ms
    if faults.latency_ms_max > 0.0:
        delay_ms += state.rng.uniform(faults.latency_ms_min, faults.latency_ms_max)
    if delay_ms > 0.0:
        await asyncio.sleep(delay_ms / 1000.0)
