"""The CRM proper: ``POST /v1/customers/update`` and ``POST /v1/customers``.

Both validate their body as strictly as the other (sandbox/crm/models.py) before anything
executes, and both run through the Idempotency-Key layer (sandbox/crm/idempotency.py).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from sandbox.crm.idempotency import Outcome, idempotency_key, run_once, spend_latency
from sandbox.crm.models import EMPTY_ATTRIBUTES, CreateRequest, UpdateRequest, field_errors
from sandbox.crm.responses import error_body, error_response
from sandbox.crm.state import STATE
from sandbox.crm.store import JsonObject, iso_utc_ms

_JSON: Final = "application/json"
Model = TypeVar("Model", bound=BaseModel)


async def read_json(request: web.Request) -> Any | web.Response:
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


def _invalid(error: ValidationError) -> web.Response:
    problems = field_errors(error)
    detail = "; ".join(f"{item['field']}: {item['reason']}" for item in problems)
    return error_response(422, "invalid_payload", detail, fields=problems)


async def _handle(
    request: web.Request,
    model: type[Model],
    execute: Callable[[Model, JsonObject, str | None], Awaitable[Outcome]],
) -> web.Response:
    key = idempotency_key(request)
    if isinstance(key, web.Response):
        return key
    payload = await read_json(request)
    if isinstance(payload, web.Response):
        return payload
    try:
        parsed = model.model_validate(payload)
    except ValidationError as exc:
        return _invalid(exc)
    # A body that validated against a model is a JSON object.
    return await run_once(request, key, payload, parsed, execute)


async def update_customer(request: web.Request) -> web.Response:
    state = request.app[STATE]

    async def execute(update: UpdateRequest, payload: JsonObject, key: str | None) -> Outcome:
        faults = state.faults
        prefix = faults.slow_customer_prefix
        slow = prefix is not None and update.id.startswith(prefix)
        await spend_latency(request, faults.slow_customer_ms if slow else 0.0)
        prefix = state.faults.reject_customer_prefix
        if prefix is not None and update.id.startswith(prefix):
            # A business rule of the CRM's, checked while executing (unlike a malformed body).
            # Real CRMs echo the record in their error text; so does this one, so that the
            # consumer's handling of error bodies (never logged as they are) is tested.
            return 422, error_body(
                "rejected", f"customer {update.id!r} rejected by a CRM business rule"
            )
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

    return await _handle(request, UpdateRequest, execute)


async def create_customer(request: web.Request) -> web.Response:
    state = request.app[STATE]

    async def execute(create: CreateRequest, payload: JsonObject, key: str | None) -> Outcome:
        await spend_latency(request)
        store = state.store
        if store.customer(create.id) is not None:
            return 409, error_body("customer_exists", f"customer {create.id!r} already exists")
        given = create.attributes.given() if create.attributes is not None else {}
        customer = store.create_customer(create.id, {**EMPTY_ATTRIBUTES, **given})
        store.log_write(
            customer_id=create.id,
            idempotency_key=key,
            received_at=iso_utc_ms(),
            status=201,
            operation="create",
            body=payload,
        )
        return 201, {"id": customer.id, "version": customer.version}

    return await _handle(request, CreateRequest, execute)
