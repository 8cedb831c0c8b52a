"""RFC 9457 problem details: every error the bridge answers has this one shape."""

from __future__ import annotations

import json
from typing import Any, Final

from aiohttp import web

PROBLEM_CONTENT_TYPE: Final = "application/problem+json"
_TYPE_BASE: Final = "https://segstream.dev/problems/"


def problem(
    status: int,
    slug: str,
    title: str,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> web.Response:
    body = {"type": _TYPE_BASE + slug, "title": title, "status": status, "detail": detail}
    body.update(extensions)
    return web.Response(
        status=status,
        text=json.dumps(body),
        content_type=PROBLEM_CONTENT_TYPE,
        headers=headers,
    )
