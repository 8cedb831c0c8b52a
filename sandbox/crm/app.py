"""The CRM simulator's HTTP application: the seed's REST CRM API plus an inspection API.

``/v1/*`` is the CRM proper. Each request passes, in this order: outage (503), bearer auth (401),
the token bucket (429 + Retry-After), injected latency, an injected timeout (hang, then 504) or
error (503/500), and only then the real handling. Nothing before the real handling changes state,
so a request that failed for any of those reasons left no trace but a count in the stats.

``/_sim/*`` (no auth) lets tests and people look inside and change the faults at run time;
``/healthz`` answers whether the process is up.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import math
import random
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Final

from aiohttp import web
from pydantic import ValidationError

from sandbox.crm.faults import Faults
from sandbox.crm.logs import configure_logging
from sandbox.crm.models import EMPTY_ATTRIBUTES, CreateRequest, UpdateRequest, field_errors
from sandbox.crm.ratelimit import TokenBucket
from sandbox.crm.settings import CrmSimulatorSettings
from sandbox.crm.store import (
    CrmStore,
    IdempotencyRecord,
    JsonObject,
    RequestEntry,
    fingerprint,
    iso_utc_ms,
)

IDEMPOTENCY_KEY: Final = "Idempotency-Key"
IDEMPOTENT_REPLAYED: Final = "Idempotent-Replayed"
RETRY_AFTER: Final = "Retry-After"
RETRY_AFTER_MS: Final = "Retry-After-Ms"
# Stripe's limit; a longer key is a client bug, not an identifier.
MAX_IDEMPOTENCY_KEY_LENGTH: Final = 255
# Long enough for a batch-sized JSON body, small enough that a runaway client is refused (413).
MAX_BODY_BYTES: Final = 1024 * 1024
_JSON: Final = "application/json"

_log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Outcome = tuple[int, JsonObject]


@dataclass
class SimulatorState:
    """Everything one simulator instance knows; stored on the application."""

    settings: CrmSimulatorSettings
    token: bytes = field(repr=False)
    faults: Faults
    bucket: TokenBucket
    store: CrmStore
    rng: random.Random
    # Set on shutdown so requests hanging in a simulated timeout let the server stop promptly.
    stopping: asyncio.Event = field(default_factory=asyncio.Event)


STATE: Final = web.AppKey("crm_simulator_state", SimulatorState)


def create_app(settings: CrmSimulatorSettings) -> web.Application:
    """Build the simulator application. Raises ``CrmTokenError`` when there is no usable token."""
    token = settings.bearer_token()
    faults = settings.initial_faults()
    state = SimulatorState(
        settings=settings,
        token=token.encode("utf-8"),
        faults=faults,
        bucket=TokenBucket(faults.rate_limit_per_s, faults.rate_limit_burst),
        store=CrmStore(),
        rng=random.Random(settings.random_seed),
    )
    app = web.Application(middlewares=[_json_errors, _crm_gate], client_max_size=MAX_BODY_BYTES)
    app[STATE] = state
    app.on_shutdown.append(_on_shutdown)
    app.router.add_get("/healthz", _healthz)
    app.router.add_post("/v1/customers/update", _update_customer)
    app.router.add_post("/v1/customers", _create_customer)
    app.router.add_get("/_sim/customers/{customer_id:.+}", _sim_customer)
    app.router.add_get("/_sim/writes", _sim_writes)
    app.router.add_get("/_sim/stats", _sim_stats)
    app.router.add_get("/_sim/requests", _sim_requests)
    app.router.add_get("/_sim/faults", _sim_get_faults)
    app.router.add_post("/_sim/faults", _sim_set_faults)
    app.router.add_post("/_sim/reset", _sim_reset)
    return app


async def _on_shutdown(app: web.Application) -> None:
    app[STATE].stopping.set()


# -- responses ---------------------------------------------------------------------------------


def error_body(code: str, detail: str, **extra: Any) -> JsonObject:
    return {"error": code, "detail": detail, **extra}


def error_response(
    status: int,
    code: str,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> web.Response:
    return web.json_response(error_body(code, detail, **extra), status=status, headers=headers)


def _code_for(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return f"http_{status}"


def _from_http_exception(exc: web.HTTPException) -> web.Response:
    headers = {
        name: value
        for name, value in exc.headers.items()
        if name.lower() not in {"content-type", "content-length"}
    }
    detail = exc.text if exc.text and exc.text != f"{exc.status}: {exc.reason}" else exc.reason
    return error_response(exc.status, _code_for(exc.status), detail, headers=headers)


@web.middleware
async def _json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error leaves as ``{"error", "detail"}`` JSON, router 404/405/413 included."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _from_http_exception(exc)


# -- the /v1 gate: outage, auth, rate limit, latency, injected faults --------------------------


def _is_crm_path(path: str) -> bool:
    return path == "/v1" or path.startswith("/v1/")


@web.middleware
async def _crm_gate(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not _is_crm_path(request.path):
        return await handler(request)
    state = request.app[STATE]
    started = time.monotonic()
    received_at = iso_utc_ms()
    try:
        response = await _through_gate(request, handler, state)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = _from_http_exception(exc)
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
            retry_after_ms=_retry_after_ms(response),
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


def _retry_after_ms(response: web.StreamResponse) -> int | None:
    precise = response.headers.get(RETRY_AFTER_MS)
    if precise is not None:
        return int(precise)
    seconds = response.headers.get(RETRY_AFTER)
    return int(seconds) * 1000 if seconds is not None and seconds.isdigit() else None


async def _through_gate(
    request: web.Request, handler: Handler, state: SimulatorState
) -> web.StreamResponse:
    faults = state.faults
    refused = _refuse(request, state, faults)
    if refused is not None:
        return refused
    injected = await _inject_faults(state, faults)
    if injected is not None:
        return injected
    return await handler(request)


def _refuse(request: web.Request, state: SimulatorState, faults: Faults) -> web.Response | None:
    """Outage, then auth, then the token bucket: the answers a CRM gives before doing any work."""
    if faults.outage:
        return error_response(
            503, "outage", "the CRM is unavailable (simulated outage)", headers={RETRY_AFTER: "1"}
        )
    refused = _check_auth(request, state, faults)
    if refused is not None:
        return refused
    wait_s = state.bucket.try_acquire()
    if wait_s > 0.0:
        return _rate_limited(wait_s)
    return None


async def _inject_faults(state: SimulatorState, faults: Faults) -> web.Response | None:
    """Latency, then one draw deciding between a timeout, an error, or going through."""
    if faults.latency_ms_max > 0.0:
        delay_ms = state.rng.uniform(faults.latency_ms_min, faults.latency_ms_max)
        await asyncio.sleep(delay_ms / 1000.0)
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
                headers={RETRY_AFTER: "1"},
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


def _rate_limited(wait_s: float) -> web.Response:
    retry_after_ms = max(1, math.ceil(wait_s * 1000.0))
    retry_after_s = max(1, math.ceil(wait_s))
    return error_response(
        429,
        "rate_limited",
        f"rate limit exceeded; retry in {retry_after_ms} ms",
        headers={RETRY_AFTER: str(retry_after_s), RETRY_AFTER_MS: str(retry_after_ms)},
    )


async def _hang(state: SimulatorState, hang_s: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(hang_s):
            await state.stopping.wait()


# -- /v1 handlers ------------------------------------------------------------------------------


async def _read_json(request: web.Request) -> Any | web.Response:
    """The parsed JSON body, or the 415/400 response that refuses it."""
    if request.content_type != _JSON:
        return error_response(
            415,
            "unsupported_media_type",
            f"Content-Type must be {_JSON}, got {request.content_type or 'none'}",
        )
    raw = await request.read()
    if not raw:
        return error_response(400, "bad_json", "the request body is empty")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return error_response(400, "bad_json", "the request body is not valid UTF-8")
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except ValueError as exc:
        return error_response(400, "bad_json", f"the request body is not valid JSON: {exc}")


def _refuse_constant(name: str) -> Any:
    msg = f"{name} is not a JSON number"
    raise ValueError(msg)


def _idempotency_key(request: web.Request) -> str | web.Response | None:
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


async def _idempotent(
    request: web.Request,
    operation: Callable[[Any, str | None], Outcome],
) -> web.Response:
    """Parse the body and run ``operation`` once per Idempotency-Key (replaying its answer)."""
    store = request.app[STATE].store
    key = _idempotency_key(request)
    if isinstance(key, web.Response):
        return key
    payload = await _read_json(request)
    if isinstance(payload, web.Response):
        return payload
    if request.path == "/v1/customers/update":
        await _slow_customer_delay(request.app[STATE].faults, payload)
    digest = fingerprint(request.method, request.path, payload)
    if key is not None:
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
    status, body = operation(payload, key)
    # Only completed operations are remembered (as Stripe does: a request that did not get to
    # change anything saves no result). A 5xx, 429 or 401 never reaches this point, and a 404
    # says the customer is not there *yet*: the client creates it and retries the update with the
    # same key, which must then be processed, not answered with the stored 404.
    if key is not None and status < 500 and status != 404:
        store.remember(key, IdempotencyRecord(fingerprint=digest, status=status, body=body))
    return web.json_response(body, status=status)


async def _slow_customer_delay(faults: Faults, payload: Any) -> None:
    prefix = faults.slow_customer_prefix
    customer_id = payload.get("id") if isinstance(payload, dict) else None
    if prefix and isinstance(customer_id, str) and customer_id.startswith(prefix):
        await asyncio.sleep(faults.slow_customer_ms / 1000.0)


def _invalid(error: ValidationError) -> Outcome:
    problems = field_errors(error)
    detail = "; ".join(f"{item['field']}: {item['reason']}" for item in problems)
    return 422, error_body("invalid_payload", detail, fields=problems)


async def _update_customer(request: web.Request) -> web.Response:
    state = request.app[STATE]

    def apply(payload: Any, key: str | None) -> Outcome:
        try:
            update = UpdateRequest.model_validate(payload)
        except ValidationError as exc:
            return _invalid(exc)
        prefix = state.faults.reject_customer_prefix
        if prefix is not None and update.id.startswith(prefix):
            return 422, error_body("rejected", "rejected by CRM validation")
        store = state.store
        if store.customer(update.id) is None:
            if not state.settings.auto_create:
                return 404, error_body("customer_not_found", f"no customer with id {update.id!r}")
            store.create_customer(update.id, EMPTY_ATTRIBUTES)
        customer = store.update_customer(update.id, update.attributes.given(), update.last_updated)
        store.log_write(
            customer_id=update.id,
            idempotency_key=key,
            received_at=iso_utc_ms(),
            status=200,
            operation="update",
            body=payload,
        )
        return 200, {"id": customer.id, "version": customer.version}

    return await _idempotent(request, apply)


async def _create_customer(request: web.Request) -> web.Response:
    state = request.app[STATE]

    def apply(payload: Any, key: str | None) -> Outcome:
        try:
            create = CreateRequest.model_validate(payload)
        except ValidationError as exc:
            return _invalid(exc)
        store = state.store
        if store.customer(create.id) is not None:
            return 409, error_body("customer_exists", f"customer {create.id!r} already exists")
        given = create.attributes.given() if create.attributes is not None else {}
        attributes = {**EMPTY_ATTRIBUTES, **given}
        customer = store.create_customer(create.id, attributes)
        store.log_write(
            customer_id=create.id,
            idempotency_key=key,
            received_at=iso_utc_ms(),
            status=201,
            operation="create",
            body=payload,
        )
        return 201, {"id": customer.id, "version": customer.version}

    return await _idempotent(request, apply)


async def _healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


# -- /_sim inspection API ----------------------------------------------------------------------


async def _sim_customer(request: web.Request) -> web.Response:
    customer_id = request.match_info["customer_id"]
    customer = request.app[STATE].store.customer(customer_id)
    if customer is None:
        return error_response(404, "customer_not_found", f"no customer with id {customer_id!r}")
    return web.json_response(customer.as_json())


async def _sim_writes(request: web.Request) -> web.Response:
    customer_id = request.query.get("customer_id")
    writes = request.app[STATE].store.writes(customer_id)
    return web.json_response({"writes": [entry.as_json() for entry in writes]})


async def _sim_requests(request: web.Request) -> web.Response:
    entries = request.app[STATE].store.requests()
    return web.json_response({"requests": [entry.as_json() for entry in entries]})


async def _sim_stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].store.stats.as_json())


async def _sim_get_faults(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].faults.model_dump())


async def _sim_set_faults(request: web.Request) -> web.Response:
    state = request.app[STATE]
    changes = await _read_json(request)
    if isinstance(changes, web.Response):
        return changes
    if not isinstance(changes, dict):
        return error_response(
            422, "invalid_faults", "the body must be a JSON object of fault fields"
        )
    try:
        faults = state.faults.updated(changes)
    except ValidationError as exc:
        problems = field_errors(exc)
        detail = "; ".join(f"{item['field']}: {item['reason']}" for item in problems)
        return error_response(422, "invalid_faults", detail, fields=problems)
    state.faults = faults
    state.bucket.reconfigure(faults.rate_limit_per_s, faults.rate_limit_burst)
    _log.info("crm simulator faults changed", extra={"changes": sorted(changes)})
    return web.json_response(faults.model_dump())


async def _sim_reset(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.store.reset()
    state.bucket.refill_completely()
    _log.info("crm simulator state reset")
    return web.json_response({"status": "reset"})


# -- serving -----------------------------------------------------------------------------------


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def serve(settings: CrmSimulatorSettings, *, stop: asyncio.Event | None = None) -> None:
    """Serve until ``stop`` is set, or until SIGINT/SIGTERM when no event is given."""
    app = create_app(settings)
    # Hanging requests end on shutdown (see ``_hang``), so a few seconds of grace are plenty.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=5.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        host, port = runner.addresses[0][:2]
        faults = app[STATE].faults
        _log.info(
            "crm simulator listening",
            extra={
                "url": _url(str(host), int(port)),
                "auto_create": settings.auto_create,
                "faults": faults.model_dump(),
            },
        )
        if stop is None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        _log.info("crm simulator stopping")
    finally:
        await runner.cleanup()


def run(settings: CrmSimulatorSettings | None = None) -> None:
    """Configure JSON logging and serve the simulator until interrupted (``make run``)."""
    resolved = settings if settings is not None else CrmSimulatorSettings()
    configure_logging(resolved.log_level)
    asyncio.run(serve(resolved))
