"""The aiohttp application: routes, probes, metrics, the OpenAPI document, and one error shape."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from producer_bridge.auth import Authenticator, SharedSecretVerifier, SignatureVerifier
from producer_bridge.handlers import BATCH_PATH, EVENTS_PATH, EventIntake
from producer_bridge.metrics import BridgeMetrics
from producer_bridge.openapi import openapi_document
from producer_bridge.problems import Problem, RequestRejectedError
from producer_bridge.publisher import Publisher
from producer_bridge.records import RecordBuilder
from producer_bridge.settings import BridgeSettings
from producer_bridge.shapes import EventMapper
from schemas.codec import EventCodec

_log = logging.getLogger("producer_bridge")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_authenticator(settings: BridgeSettings) -> Authenticator:
    """Raises :class:`ConfigurationError` when no secret is set and unsigned mode is not asked."""
    return Authenticator(
        SignatureVerifier(settings.signing_secrets()),
        SharedSecretVerifier(settings.shared_secret_header, settings.shared_secret_values()),
        allow_unsigned=settings.allow_unsigned,
    )


class Probes:
    def __init__(self, settings: BridgeSettings, publisher: Publisher, metrics: BridgeMetrics):
        self._settings = settings
        self._publisher = publisher
        self._metrics = metrics
        self.stopping = False
        self._openapi = json.dumps(openapi_document(settings), indent=2).encode()

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        if self.stopping:
            raise RequestRejectedError(self._not_ready("the bridge is shutting down"))
        loop = asyncio.get_running_loop()
        ready = await loop.run_in_executor(
            None,
            self._publisher.ready,
            self._settings.topic,
            self._settings.readiness_timeout_ms / 1000,
        )
        if not ready:
            raise RequestRejectedError(
                self._not_ready(
                    f"the Kafka cluster did not describe topic {self._settings.topic} in time"
                )
            )
        return web.json_response({"status": "ready", "topic": self._settings.topic})

    async def metrics_page(self, request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self._metrics.registry),
            headers={"Content-Type": CONTENT_TYPE_LATEST},
        )

    async def openapi(self, request: web.Request) -> web.Response:
        return web.Response(body=self._openapi, content_type="application/json")

    def _not_ready(self, detail: str) -> Problem:
        return Problem(
            503,
            "not-ready",
            "Not Ready",
            detail,
            headers={"Retry-After": str(self._settings.retry_after_s)},
        )


def _problem_middleware(metrics: BridgeMetrics) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        started = time.perf_counter()
        metrics.in_flight.inc()
        try:
            response = await handler(request)
        except RequestRejectedError as exc:
            response = exc.problem.response()
        except web.HTTPException as exc:  # 404, 405 from the router
            response = Problem(
                exc.status,
                exc.reason.lower().replace(" ", "-"),
                exc.reason,
                f"{request.method} {request.path}: {exc.reason}",
                headers={k: v for k, v in exc.headers.items() if k == "Allow"},
            ).response()
        except Exception:
            _log.exception("unexpected error", extra={"path": request.path})
            response = Problem(
                500, "internal-error", "Internal Server Error", "unexpected error; retry later"
            ).response()
        finally:
            metrics.in_flight.dec()
        metrics.requests.labels(route, str(response.status)).inc()
        metrics.request_duration.labels(route).observe(time.perf_counter() - started)
        return response

    return middleware


PROBES_KEY: Final = web.AppKey("probes", Probes)


def create_app(
    settings: BridgeSettings,
    publisher: Publisher,
    *,
    metrics: BridgeMetrics | None = None,
    authenticator: Authenticator | None = None,
) -> web.Application:
    """The bridge; ``publisher`` is closed (flushed) when the application shuts down."""
    metrics = metrics or BridgeMetrics()
    metrics.watch_producer_queue(publisher.queued)
    registry: dict[str, Any] | None = (
        {"url": settings.schema_registry_url} if settings.schema_registry_url else None
    )
    intake = EventIntake(
        settings=settings,
        authenticator=authenticator or build_authenticator(settings),
        mapper=EventMapper(settings.platform_customer_key_fields),
        builder=RecordBuilder(EventCodec(settings.topic, registry)),
        publisher=publisher,
        metrics=metrics,
    )
    probes = Probes(settings, publisher, metrics)
    app = web.Application(middlewares=[_problem_middleware(metrics)])
    app[PROBES_KEY] = probes
    app.router.add_post(EVENTS_PATH, intake.accept_one)
    app.router.add_post(BATCH_PATH, intake.accept_batch)
    app.router.add_get("/healthz", probes.healthz, allow_head=False)
    app.router.add_get("/readyz", probes.readyz, allow_head=False)
    app.router.add_get("/metrics", probes.metrics_page, allow_head=False)
    app.router.add_get("/openapi.json", probes.openapi, allow_head=False)

    async def stop_being_ready(app: web.Application) -> None:
        probes.stopping = True

    async def flush_publisher(app: web.Application) -> None:
        # Runs after in-flight requests had their time: what is still queued gets its last
        # chance to reach the broker before the process exits.
        loop = asyncio.get_running_loop()
        unsent = await loop.run_in_executor(None, publisher.close)
        if unsent:
            _log.error("records left unsent at shutdown", extra={"unsent": unsent})
        else:
            _log.info("producer flushed; bridge stopped")

    app.on_shutdown.append(stop_being_ready)
    app.on_cleanup.append(flush_publisher)
    return app
