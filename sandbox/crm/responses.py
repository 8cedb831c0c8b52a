"""The simulator's error answers: always ``{"error": <code>, "detail": <text>, ...}`` JSON."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

from aiohttp import web

from sandbox.crm.store import JsonObject

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


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


def from_http_exception(exc: web.HTTPException) -> web.Response:
    """aiohttp's own 4xx (router 404/405, body 413) as the simulator's JSON error."""
    headers = {
        name: value
        for name, value in exc.headers.items()
        if name.lower() not in {"content-type", "content-length"}
    }
    detail = exc.text if exc.text and exc.text != f"{exc.status}: {exc.reason}" else exc.reason
    return error_response(exc.status, _code_for(exc.status), detail, headers=headers)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error leaves as ``{"error", "detail"}`` JSON, router 404/405/413 included."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return from_http_exception(exc)
