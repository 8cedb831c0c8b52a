"""Reading a webhook request body safely: typed, and bounded before anything is read."""

from __future__ import annotations

from aiohttp import web

from producer_bridge.errors import BridgeError


class BodyTooLargeError(BridgeError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"request body exceeds {limit} bytes")
        self.limit = limit


def is_json(request: web.Request) -> bool:
    # ``application/json`` with or without a charset, and ``application/*+json`` vendor types.
    content_type = request.content_type
    return content_type == "application/json" or (
        content_type.startswith("application/") and content_type.endswith("+json")
    )


async def read_bounded(request: web.Request, limit: int) -> bytes:
    """The body, reading no further than ``limit`` bytes; a declared larger length fails first,
    before a single body byte is read."""
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLargeError(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(min(64 * 1024, limit + 1 - size))
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError(limit)
        chunks.append(chunk)
