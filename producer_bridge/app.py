"""The webhook receiver: authenticate, validate, publish durably, then answer 202."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Final

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError

from producer_bridge.auth import SignatureVerifier
from producer_bridge.errors import AuthenticationError, PublishUnavailableError
from producer_bridge.intake import BodyTooLargeError, is_json, read_bounded
from producer_bridge.metrics import BridgeMetrics
from producer_bridge.payloads import ArchitectPayload, describe_errors
from producer_bridge.problems import problem
from producer_bridge.publisher import KafkaPublisher
from producer_bridge.settings import BridgeSettings
from schemas.codec import EventCodec
from schemas.errors import EventEncodeError
from schemas.model import InteractionCompleted
from schemas.topics import HEADER_CONTENT_TYPE, HEADER_EVENT_ID, HEADER_SOURCE, HEADER_TRACEPARENT

EVENTS_PATH: Final = "/v1/interactions/completed"
# How long to tell a sender to wait after a 503: long enough for a broker leader election
# (typically < 1 s with KRaft) plus the client's metadata refresh.
RETRY_AFTER_S: Final = "2"
# /readyz must answer well inside a kubelet probe's default 1 s timeout.
READINESS_TIMEOUT_S: Final = 0.8
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")

_log = logging.getLogger(__name__)


class Bridge:
    """What a request handler needs: settings, verifier, codec, publisher, metrics."""

    def __init__(
        self,
        settings: BridgeSettings,
        publisher: KafkaPublisher,
        verifier: SignatureVerifier,
        codec: EventCodec,
        metrics: BridgeMetrics,
    ) -> None:
        self.settings = settings
        self.publisher = publisher
        self.verifier = verifier
        self.codec = codec
        self.metrics = metrics

    async def accept_one(self, request: web.Request) -> web.Response:
        if not is_json(request):
            return problem(
                415,
                "unsupported-media-type",
                "Unsupported Media Type",
                "send the event as application/json",
            )
        try:
            body = await read_bounded(request, self.settings.max_event_bytes)
        except BodyTooLargeError as exc:
            return problem(
                413, "payload-too-large", "Payload Too Large", str(exc), limit_bytes=exc.limit
            )
        self.metrics.request_bytes.inc(len(body))
        try:
            self.verifier.verify(body, request.headers)
        except AuthenticationError as exc:
            _log.info("signature rejected", extra={"reason": str(exc), "path": request.path})
            return problem(
                401,
                "unauthorized",
                "Unauthorized",
                str(exc),
                headers={"WWW-Authenticate": 'StandardWebhooks realm="segstream"'},
            )
        try:
            document = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return problem(400, "malformed-json", "Malformed JSON", f"body is not JSON: {exc}")
        received_at = datetime.now(UTC)
        try:
            event = ArchitectPayload.model_validate(document).to_event(received_at)
        except ValidationError as exc:
            self.metrics.events.labels("rejected").inc()
            return problem(
                422,
                "invalid-event",
                "Invalid Event",
                "the event has invalid fields",
                errors=describe_errors(exc.errors()),
            )
        return await self._publish(event, request)

    async def _publish(self, event: InteractionCompleted, request: web.Request) -> web.Response:
        try:
            value = self.codec.encode(event)
        except EventEncodeError as exc:  # a schema registry that is down or refuses the schema
            return self._unavailable(event, str(exc))
        headers = [
            (HEADER_EVENT_ID, event.event_id.encode()),
            (HEADER_CONTENT_TYPE, self.codec.content_type.encode()),
            (HEADER_SOURCE, b"architect-webhook"),
        ]
        traceparent = request.headers.get("traceparent", "").strip().lower()
        if _TRACEPARENT.match(traceparent):
            headers.append((HEADER_TRACEPARENT, traceparent.encode()))
        started = time.perf_counter()
        try:
            delivered = await self.publisher.publish(
                self.settings.topic, event.customer_id.encode(), value, headers
            )
        except PublishUnavailableError as exc:
            return self._unavailable(event, str(exc))
        self.metrics.produce_latency.observe(time.perf_counter() - started)
        self.metrics.events.labels("accepted").inc()
        _log.info(
            "event accepted",
            extra={
                "event_id": event.event_id,
                "topic": delivered.topic,
                "partition": delivered.partition,
                "offset": delivered.offset,
            },
        )
        return web.json_response(
            {
                "status": "accepted",
                "event_id": event.event_id,
                "partition": delivered.partition,
                "offset": delivered.offset,
            },
            status=202,
        )

    def _unavailable(self, event: InteractionCompleted, reason: str) -> web.Response:
        self.metrics.events.labels("unavailable").inc()
        _log.warning("event not accepted", extra={"event_id": event.event_id, "reason": reason})
        return problem(
            503,
            "unavailable",
            "Service Unavailable",
            "the event was not stored; retry later",
            headers={"Retry-After": RETRY_AFTER_S},
        )

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        loop = asyncio.get_running_loop()
        ready = await loop.run_in_executor(None, self.publisher.ready, READINESS_TIMEOUT_S)
        if ready:
            return web.json_response({"status": "ready"})
        return problem(
            503,
            "not-ready",
            "Not Ready",
            "the Kafka cluster did not answer",
            headers={"Retry-After": RETRY_AFTER_S},
        )

    async def metrics_page(self, request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self.metrics.registry),
            headers={"Content-Type": CONTENT_TYPE_LATEST},
        )


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _observability_middleware(
    metrics: BridgeMetrics,
) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.match_info.route.resource
        route_name = route.canonical if route is not None else "unmatched"
        metrics.in_flight.inc()
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = problem(
                exc.status,
                exc.reason.lower().replace(" ", "-"),
                exc.reason,
                f"{request.method} {request.path}: {exc.reason}",
                headers={k: v for k, v in exc.headers.items() if k == "Allow"},
            )
        finally:
            metrics.in_flight.dec()
        metrics.requests.labels(route_name, str(response.status)).inc()
        return response

    return middleware


BRIDGE_KEY: Final = web.AppKey("bridge", Bridge)


def create_app(bridge: Bridge) -> web.Application:
    app = web.Application(middlewares=[_observability_middleware(bridge.metrics)])
    app[BRIDGE_KEY] = bridge
    app.router.add_post(EVENTS_PATH, bridge.accept_one)
    app.router.add_get("/healthz", bridge.healthz)
    app.router.add_get("/readyz", bridge.readyz)
    app.router.add_get("/metrics", bridge.metrics_page)

    async def close_publisher(app: web.Application) -> None:
        loop = asyncio.get_running_loop()
        unsent = await loop.run_in_executor(None, bridge.publisher.close)
        if unsent:
            _log.error("records left unsent at shutdown", extra={"unsent": unsent})

    app.on_cleanup.append(close_publisher)
    return app
