"""The two event endpoints: authenticate, read (bounded), parse, map, publish durably, answer.

Every refusal is raised as :class:`RequestRejectedError` before anything is produced; a 202 is
sent only once the broker acknowledged every record of the request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

from aiohttp import web

from producer_bridge import problems
from producer_bridge.auth import Authenticator
from producer_bridge.errors import (
    AuthenticationError,
    InvalidEventError,
    MalformedJsonError,
    PublishUnavailableError,
)
from producer_bridge.intake import (
    ACCEPTED_CONTENT_CODINGS,
    BodyReadTimeoutError,
    BodyTooLargeError,
    BodyUndecodableError,
    is_json,
    read_bounded,
    unsupported_content_coding,
)
from producer_bridge.jsontext import parse_array, parse_document
from producer_bridge.keyring import SecretsReloader
from producer_bridge.metrics import BridgeMetrics
from producer_bridge.problems import RequestRejectedError
from producer_bridge.publisher import Delivered, OutgoingRecord, Publisher
from producer_bridge.records import RecordBuilder, valid_traceparent
from producer_bridge.settings import BridgeSettings
from producer_bridge.shapes import EventMapper, MappedEvent
from producer_bridge.shapes.platform import is_platform_envelope
from schemas.errors import EventEncodeError
from schemas.topics import SOURCE_ARCHITECT, SOURCE_PLATFORM_EVENT

EVENTS_PATH: Final = "/v1/interactions/completed"
BATCH_PATH: Final = "/v1/interactions/completed:batch"

_log = logging.getLogger("producer_bridge.intake")
T = TypeVar("T")


class EventIntake:
    def __init__(
        self,
        *,
        settings: BridgeSettings,
        authenticator: Authenticator,
        reloader: SecretsReloader,
        mapper: EventMapper,
        builder: RecordBuilder,
        publisher: Publisher,
        metrics: BridgeMetrics,
    ) -> None:
        self._settings = settings
        self._authenticator = authenticator
        self._reloader = reloader
        self._mapper = mapper
        self._builder = builder
        self._publisher = publisher
        self._metrics = metrics

    async def accept_one(self, request: web.Request) -> web.Response:
        body = await self._authenticated_body(request, self._settings.max_event_bytes, EVENTS_PATH)
        try:
            document = parse_document(body)
        except MalformedJsonError as exc:
            raise RequestRejectedError(problems.malformed_json(str(exc))) from exc
        received_at = datetime.now(UTC)
        try:
            mapped = self._mapper.map(document, received_at)
        except InvalidEventError as exc:
            self._rejected(document)
            raise RequestRejectedError(
                problems.invalid_event("the event has invalid fields", list(exc.errors))
            ) from exc
        [outcome] = await self._publish([mapped], request)
        if isinstance(outcome, PublishUnavailableError):
            raise RequestRejectedError(
                problems.unavailable(
                    f"the event is not known to be stored ({outcome}); retry later",
                    self._settings.retry_after_s,
                )
            )
        return web.json_response(
            {
                "status": "accepted",
                "event_id": mapped.event.event_id,
                "partition": outcome.partition,
                "offset": outcome.offset,
            },
            status=202,
        )

    async def accept_batch(self, request: web.Request) -> web.Response:
        settings = self._settings
        body = await self._authenticated_body(request, settings.max_batch_bytes, BATCH_PATH)
        try:
            items = parse_array(body)
        except MalformedJsonError as exc:
            raise RequestRejectedError(problems.malformed_json(str(exc))) from exc
        if items is None or not items:
            reason = "a batch is a JSON array" if items is None else "a batch holds 1 event or more"
            raise RequestRejectedError(
                problems.invalid_event(reason, [{"field": "(body)", "reason": reason}])
            )
        if len(items) > settings.max_batch_events:
            raise RequestRejectedError(
                problems.payload_too_large(
                    f"the batch holds {len(items)} events; at most {settings.max_batch_events}",
                    settings.max_batch_bytes,
                    max_events=settings.max_batch_events,
                )
            )
        oversized = [
            i for i, item in enumerate(items) if item.size_bytes > settings.max_event_bytes
        ]
        if oversized:
            raise RequestRejectedError(
                problems.payload_too_large(
                    f"events over {settings.max_event_bytes} bytes each: indexes {oversized}",
                    settings.max_event_bytes,
                    oversized_indexes=oversized,
                )
            )
        received_at = datetime.now(UTC)
        mapped: list[MappedEvent] = []
        errors: list[dict[str, Any]] = []
        for index, item in enumerate(items):
            try:
                mapped.append(self._mapper.map(item.value, received_at))
            except InvalidEventError as exc:
                self._rejected(item.value)
                errors.extend({"index": index, **error} for error in exc.errors)
        if errors:
            invalid = sorted({error["index"] for error in errors})
            raise RequestRejectedError(
                problems.invalid_event(
                    f"{len(invalid)} of {len(items)} events are invalid; nothing was stored",
                    errors,
                    invalid_indexes=invalid,
                )
            )
        outcomes = await self._publish(mapped, request)
        unacknowledged = [
            i for i, outcome in enumerate(outcomes) if isinstance(outcome, PublishUnavailableError)
        ]
        if unacknowledged:
            raise RequestRejectedError(
                problems.unavailable(
                    f"{len(unacknowledged)} of {len(outcomes)} events are not known to be stored "
                    f"({outcomes[unacknowledged[0]]}); retry the batch later "
                    "(stored events dedupe by event id)",
                    settings.retry_after_s,
                    unacknowledged_indexes=unacknowledged,
                )
            )
        return web.json_response(
            {
                "status": "accepted",
                "count": len(mapped),
                "events": [
                    {
                        "index": index,
                        "event_id": event.event.event_id,
                        "partition": outcome.partition,
                        "offset": outcome.offset,
                    }
                    for index, (event, outcome) in enumerate(zip(mapped, outcomes, strict=True))
                    if isinstance(outcome, Delivered)
                ],
            },
            status=202,
        )

    def _unresolved(self, event: MappedEvent, outcome: Delivered) -> None:
        # WARNING, once per event: a flow variable with no value is the flow's bug, and its
        # designer needs the event ids to find it (the field names only, never the values).
        for name in event.unresolved:
            self._metrics.unresolved_fields.labels(event.source, name).inc()
        _log.warning(
            "fields held an unresolved template placeholder and were read as not carried",
            extra={
                "event_id": event.event.event_id,
                "source": event.source,
                "fields": list(event.unresolved),
                "topic": outcome.topic,
                "partition": outcome.partition,
                "offset": outcome.offset,
            },
        )

    async def _authenticated_body(self, request: web.Request, limit: int, route: str) -> bytes:
        """Credentials first, as far as they can be checked without the body (a caller without
        plausible ones gets nothing read), then the content type and coding, then at most
        ``limit`` bytes within the read timeout, then the signature over exactly those bytes.

        A client that disconnects mid-body raises :class:`ClientDisconnectedError` (the
        middleware logs it quietly; there is nobody to answer)."""
        credentials = await self._authenticate(
            request, lambda: self._authenticator.credentials(request.headers)
        )
        if not is_json(request):
            raise RequestRejectedError(problems.unsupported_media_type(request.content_type))
        if unsupported_content_coding(request) is not None:
            raise RequestRejectedError(
                problems.unsupported_content_coding(ACCEPTED_CONTENT_CODINGS)
            )
        try:
            body = await read_bounded(request, limit, self._settings.body_read_timeout_s)
        except BodyTooLargeError as exc:
            raise RequestRejectedError(
                problems.payload_too_large(f"the request body exceeds {exc.limit} bytes", limit)
            ) from exc
        except BodyReadTimeoutError as exc:
            raise RequestRejectedError(problems.request_timeout(str(exc))) from exc
        except BodyUndecodableError as exc:
            raise RequestRejectedError(problems.undecodable_body(str(exc))) from exc
        self._metrics.request_bytes.labels(route).inc(len(body))
        await self._authenticate(
            request, lambda: self._authenticator.verify_body(credentials, body, request.headers)
        )
        return body

    async def _authenticate(self, request: web.Request, check: Callable[[], T]) -> T:
        """``check()``, and once more if it fails and re-reading the secrets files changed them
        (a rotated secret is accepted at once); raises the 401 otherwise."""
        try:
            return check()
        except AuthenticationError as exc:
            reloaded = self._reloader.claim_reload_after_failure() and await asyncio.to_thread(
                self._reloader.reload
            )
            if not reloaded:
                raise self._unauthorized(request, exc) from exc
        try:
            return check()
        except AuthenticationError as exc:
            raise self._unauthorized(request, exc) from exc

    def _unauthorized(self, request: web.Request, exc: AuthenticationError) -> RequestRejectedError:
        _log.info("request not authenticated", extra={"reason": str(exc), "path": request.path})
        return RequestRejectedError(problems.unauthorized(str(exc)))

    def _rejected(self, document: Any) -> None:
        source = SOURCE_PLATFORM_EVENT if is_platform_envelope(document) else SOURCE_ARCHITECT
        self._metrics.events.labels(source, "rejected").inc()

    async def _publish(
        self, mapped: Sequence[MappedEvent], request: web.Request
    ) -> list[Delivered | PublishUnavailableError]:
        traceparent = valid_traceparent(request.headers.get("traceparent"))
        try:
            records: list[OutgoingRecord] = [self._builder.build(m, traceparent) for m in mapped]
        except EventEncodeError as exc:  # a schema registry that is down or refuses the schema
            _log.error("event not encoded", extra={"reason": str(exc)})
            failure = PublishUnavailableError(f"event not encoded: {exc}")
            self._count(mapped, [failure] * len(mapped))
            return [failure] * len(mapped)
        started = time.perf_counter()
        outcomes = await self._publisher.publish_all(self._settings.topic, records)
        self._metrics.produce_latency.observe(time.perf_counter() - started)
        self._count(mapped, outcomes)
        return outcomes

    def _count(
        self,
        mapped: Sequence[MappedEvent],
        outcomes: Sequence[Delivered | PublishUnavailableError],
    ) -> None:
        for event, outcome in zip(mapped, outcomes, strict=True):
            if isinstance(outcome, Delivered):
                self._metrics.events.labels(event.source, "accepted").inc()
                if event.unresolved:
                    self._unresolved(event, outcome)
                # DEBUG, not INFO: a line per accepted event was most of the bridge's CPU at
                # high rates; the metric counts them and the 202 tells the sender where it went.
                _log.debug(
                    "event accepted",
                    extra={
                        "event_id": event.event.event_id,
                        "source": event.source,
                        "topic": outcome.topic,
                        "partition": outcome.partition,
                        "offset": outcome.offset,
                    },
                )
            else:
                self._metrics.events.labels(event.source, "unavailable").inc()
                _log.warning(
                    "event not accepted",
                    extra={
                        "event_id": event.event.event_id,
                        "source": event.source,
                        "topic": self._settings.topic,
                        "reason": str(outcome),
                    },
                )
