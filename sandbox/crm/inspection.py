"""``/_sim/*``: look inside the simulator and change its faults at run time (no auth)."""

from __future__ import annotations

import logging

from aiohttp import web
from pydantic import ValidationError

from sandbox.crm.customers import read_json
from sandbox.crm.models import field_errors
from sandbox.crm.responses import error_response
from sandbox.crm.state import STATE

_log = logging.getLogger(__name__)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/_sim/customers/{customer_id:.+}", _customer)
    app.router.add_get("/_sim/writes", _writes)
    app.router.add_get("/_sim/stats", _stats)
    app.router.add_get("/_sim/requests", _requests)
    app.router.add_get("/_sim/faults", _get_faults)
    app.router.add_post("/_sim/faults", _set_faults)
    app.router.add_post("/_sim/reset", _reset)
    app.router.add_get("/_sim/moved/{tail:.*}", _moved)


async def _customer(request: web.Request) -> web.Response:
    customer_id = request.match_info["customer_id"]
    customer = request.app[STATE].store.customer(customer_id)
    if customer is None:
        return error_response(404, "customer_not_found", f"no customer with id {customer_id!r}")
    return web.json_response(customer.as_json())


async def _writes(request: web.Request) -> web.Response:
    customer_id = request.query.get("customer_id")
    writes = request.app[STATE].store.writes(customer_id)
    return web.json_response({"writes": [entry.as_json() for entry in writes]})


async def _requests(request: web.Request) -> web.Response:
    entries = request.app[STATE].store.requests()
    return web.json_response({"requests": [entry.as_json() for entry in entries]})


async def _stats(request: web.Request) -> web.Response:
    store = request.app[STATE].store
    return web.json_response({**store.stats.as_json(), "executing": store.executing_count()})


async def _get_faults(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].faults.model_dump())


async def _set_faults(request: web.Request) -> web.Response:
    state = request.app[STATE]
    changes = await read_json(request)
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


async def _reset(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.store.reset()
    state.bucket.refill_completely()
    _log.info("crm simulator state reset")
    return web.json_response({"status": "reset"})


async def _moved(_request: web.Request) -> web.Response:
    """Where a moved ``/v1`` points: a page that answers GET with 200, as the landing page of a
    moved API or a login portal would. A client that followed the redirect and turned its POST
    into a GET gets a 200 here that wrote nothing."""
    return web.Response(
        text="<html><body>This API has moved.</body></html>", content_type="text/html"
    )
