"""Reading a webhook request body safely: typed, bounded in bytes and in time, decodable.

Every way a body can fail to arrive becomes one of the errors below, which the handlers answer
with a 4xx (or, for a client that went away, a quiet log line): never a 500 with a traceback.
"""

from __future__ import annotations

import asyncio
from typing import Final

from aiohttp import web

from producer_bridge.errors import BridgeError

# The content codings aiohttp decodes on every installation (zlib is in the standard library).
# br and zstd need optional packages: without them aiohttp answers 400 itself before any handler
# runs, so which codings work would depend on the installation. Anything else is refused with
# 415 and an Accept-Encoding naming these (RFC 9110 §15.5.16, §12.5.3).
ACCEPTED_CONTENT_CODINGS: Final = ("gzip", "deflate")
_READ_CHUNK_BYTES: Final = 64 * 1024


class BodyTooLargeError(BridgeError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"request body exceeds {limit} bytes")
        self.limit = limit


class BodyReadTimeoutError(BridgeError):
    """The whole body did not arrive in time (a slow or stalled client): 408."""


class BodyUndecodableError(BridgeError):
    """The body does not decode with its ``Content-Encoding`` (corrupt gzip, ...): 400."""


class ClientDisconnectedError(BridgeError):
    """The client closed the connection before sending the whole body: nobody to answer."""


def is_json(request: web.Request) -> bool:
    # ``application/json`` with or without a charset, and ``application/*+json`` vendor types.
    content_type = request.content_type
    return content_type == "application/json" or (
        content_type.startswith("application/") and content_type.endswith("+json")
    )


def unsupported_content_coding(request: web.Request) -> str | None:
    """The request's ``Content-Encoding`` when the bridge cannot take it, else ``None``.

    aiohttp decodes a single gzip or deflate coding and passes anything else through as raw
    bytes, so an unknown coding (or a list of codings) must be refused here, before the bytes
    are read as JSON."""
    coding = request.headers.get("Content-Encoding", "").strip().lower()
    if coding in ("", "identity", *ACCEPTED_CONTENT_CODINGS):
        return None
    return coding


async def read_bounded(request: web.Request, limit: int, timeout_s: float) -> bytes:
    """The (decoded) body, reading no further than ``limit`` bytes, all of it within
    ``timeout_s``; a declared larger length fails first, before a single body byte is read.

    Raises :class:`BodyTooLargeError`, :class:`BodyReadTimeoutError`,
    :class:`BodyUndecodableError` or :class:`ClientDisconnectedError`."""
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLargeError(limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                chunk = await request.content.read(min(_READ_CHUNK_BYTES, limit + 1 - size))
                if not chunk:
                    return b"".join(chunks)
                size += len(chunk)
                if size > limit:
                    raise BodyTooLargeError(limit)
                chunks.append(chunk)
    except TimeoutError as exc:
        raise BodyReadTimeoutError(
            f"the request body did not arrive within {timeout_s:g} s"
        ) from exc
    except web.RequestPayloadError as exc:  # aiohttp's wrapper for a body it cannot decode
        raise BodyUndecodableError(
            "the request body does not decode with its Content-Encoding"
        ) from exc
    except ConnectionResetError as exc:  # aiohttp: "Connection lost" while waiting for bytes
        raise ClientDisconnectedError("the client went away before sending the whole body") from exc
