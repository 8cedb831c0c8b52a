"""The CRM simulator's HTTP application: the seed's REST CRM API plus an inspection API.

``/v1/*`` is the CRM proper: every request passes the gate (sandbox/crm/gate.py: a moved
endpoint, outage, auth, rate limit, injected faults), then the Idempotency-Key layer
(sandbox/crm/idempotency.py) and the customer endpoints (sandbox/crm/customers.py).
``/_sim/*`` (no auth, sandbox/crm/inspection.py) lets tests and people look inside and change
the faults and dialects at run time; ``/healthz`` answers whether the process is up.
"""

from __future__ import annotations

import asyncio
import logging
import random
import signal

from aiohttp import web

from sandbox.crm import inspection
from sandbox.crm.customers import create_customer, update_customer
from sandbox.crm.gate import crm_gate
from sandbox.crm.logs import configure_logging
from sandbox.crm.ratelimit import TokenBucket
from sandbox.crm.responses import json_errors
from sandbox.crm.settings import CrmSimulatorSettings, CrmTokenError
from sandbox.crm.state import STATE, SimulatorState
from sandbox.crm.store import CrmStore

# Long enough for a batch-sized JSON body, small enough that a runaway client is refused (413).
MAX_BODY_BYTES = 1024 * 1024

_log = logging.getLogger(__name__)


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
    app = web.Application(middlewares=[json_errors, crm_gate], client_max_size=MAX_BODY_BYTES)
    app[STATE] = state
    app.on_shutdown.append(_on_shutdown)
    app.router.add_get("/healthz", _healthz)
    app.router.add_post("/v1/customers/update", update_customer)
    app.router.add_post("/v1/customers", create_customer)
    inspection.add_routes(app)
    return app


async def _on_shutdown(app: web.Application) -> None:
    app[STATE].stopping.set()


async def _healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


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
            # A rotated credential: the token file holds the new token, and from now on only it
            # is accepted (as a CRM does once the old token is revoked).
            loop.add_signal_handler(signal.SIGHUP, _reload_token, app[STATE])
        await stop.wait()
        _log.info("crm simulator stopping")
    finally:
        await runner.cleanup()


def _reload_token(state: SimulatorState) -> None:
    try:
        token = state.settings.bearer_token()
    except CrmTokenError as exc:
        _log.error("bearer token not reloaded; the old one stays valid: %s", exc)
        return
    state.token = token.encode("utf-8")
    _log.info("bearer token reloaded; only the new one is accepted")


def run(settings: CrmSimulatorSettings | None = None) -> None:
    """Configure JSON logging and serve the simulator until interrupted (``make run``)."""
    resolved = settings if settings is not None else CrmSimulatorSettings()
    configure_logging(resolved.log_level)
    asyncio.run(serve(resolved))
