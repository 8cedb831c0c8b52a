"""RFC 9457 problem details: every error the bridge answers has this one shape."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Final

from aiohttp import web

from producer_bridge.errors import BridgeError

PROBLEM_CONTENT_TYPE: Final = "application/problem+json"
PROBLEM_TYPE_BASE: Final = "https://segstream.dev/problems/"


@dataclass(frozen=True)
class Problem:
    status: int
    slug: str
    title: str
    detail: str
    headers: dict[str, str] = field(default_factory=dict)
    extensions: dict[str, Any] = field(default_factory=dict)

    def response(self) -> web.Response:
        body: dict[str, Any] = {
            "type": PROBLEM_TYPE_BASE + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            **self.extensions,
        }
        return web.Response(
            status=self.status,
            text=json.dumps(body),
            content_type=PROBLEM_CONTENT_TYPE,
            headers=self.headers,
        )


class RequestRejectedError(BridgeError):
    """Raised by a handler to answer with ``problem``; the middleware renders it."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(f"{problem.status} {problem.slug}: {problem.detail}")
        self.problem = problem


def unauthorized(reason: str) -> Problem:
    return Problem(
        401,
        "unauthorized",
        "Unauthorized",
        reason,
        headers={"WWW-Authenticate": 'StandardWebhooks realm="segstream"'},
    )


def unsupported_media_type(content_type: str) -> Problem:
    return Problem(
        415,
        "unsupported-media-type",
        "Unsupported Media Type",
        f"send application/json, not {content_type or 'no content type'}",
    )


def unsupported_content_coding(accepted: tuple[str, ...]) -> Problem:
    # RFC 9110 §15.5.16: a 415 caused by a content coding names the acceptable ones in
    # Accept-Encoding. The coding sent is not echoed: it is the sender's header text.
    return Problem(
        415,
        "unsupported-content-coding",
        "Unsupported Media Type",
        f"the body's Content-Encoding is not one the bridge decodes: send it uncompressed or "
        f"as one of {', '.join(accepted)}",
        headers={"Accept-Encoding": ", ".join(accepted)},
    )


def request_timeout(detail: str) -> Problem:
    # RFC 9110 §15.5.9: the server closes the connection after a 408 (the middleware does).
    return Problem(408, "request-timeout", "Request Timeout", detail)


def undecodable_body(detail: str) -> Problem:
    return Problem(400, "undecodable-body", "Bad Request", detail)


def payload_too_large(detail: str, limit_bytes: int, **extensions: Any) -> Problem:
    return Problem(
        413,
        "payload-too-large",
        "Payload Too Large",
        detail,
        extensions={"limit_bytes": limit_bytes, **extensions},
    )


def malformed_json(reason: str) -> Problem:
    return Problem(400, "malformed-json", "Malformed JSON", reason)


def invalid_event(detail: str, errors: list[Any], **extensions: Any) -> Problem:
    return Problem(
        422, "invalid-event", "Invalid Event", detail, extensions={"errors": errors, **extensions}
    )


def unavailable(detail: str, retry_after_s: int, **extensions: Any) -> Problem:
    return Problem(
        503,
        "unavailable",
        "Service Unavailable",
        detail,
        headers={"Retry-After": str(retry_after_s)},
        extensions=extensions,
    )
