"""The aiohttp application: routes, probes, metrics, the OpenAPI document, and one error shape."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from producer_bridge.auth import Authenticator
from producer_bridge.handlers import BATCH_PATH, EVENTS_PATH, EventIntake
from producer_bridge.intake import ClientDisconnectedError
from producer_bridge.keyring import SecretsReloader, build_authenticator
from producer_bridge.logs import quiet_http_parser_errors
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
        except ClientDisconnectedError as exc:
            # Not the bridge's fault and nobody left to answer: one quiet line, no traceback.
            _log.info("request abandoned", extra={"reason": str(exc), "path": request.path})
            response = Problem(400, "client-disconnected", "Bad Request", str(exc)).response()
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
        if request.body_exists and not request.content.at_eof():
            # Refused before its body was read to the end (401, 413, 408, ...): close instead of
            # letting aiohttp read and discard the rest, so an unread body costs nothing.
            response.force_close()
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
    quiet_http_parser_errors()
    registry: dict[str, Any] | None = (
        {"url": settings.schema_registry_url} if settings.schema_registry_url else None
    )
    authenticator = authenticator or build_authenticator(settings)
    reloader = SecretsReloader(settings, authenticator)
    intake = EventIntake(
        settings=settings,
        authenticator=authenticator,
        reloader=reloader,
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

    async def reload_secrets_on_a_schedule(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(reloader.run()) if reloader.enabled else None
        yield
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

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
    app.cleanup_ctx.append(reload_secrets_on_a_schedule)
    app.on_cleanup.append(flush_publisher)
    return app
