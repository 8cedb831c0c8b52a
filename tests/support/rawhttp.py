"""HTTP/1.1 by hand, for what a well-behaved client library will not send: a body that never
comes, a length that lies, a connection dropped mid-body."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass
class RawAnswer:
    status: int
    headers: dict[str, str]
    """Lower-cased names."""
    body: bytes


def request_head(path: str, headers: Mapping[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def raw_exchange(url: str, data: bytes, *, timeout_s: float = 10.0) -> RawAnswer:
    """Send ``data`` (a request head and as much body as the test wants, never the rest) and
    return the answer; ``TimeoutError`` when none comes within ``timeout_s``."""
    address = urlsplit(url)
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(timeout_s):
            head = await reader.readuntil(b"\r\n\r\n")
            status_line, *header_lines = head.decode("latin-1").split("\r\n")
            headers = {
                name.strip().lower(): value.strip()
                for name, _, value in (line.partition(":") for line in header_lines if line)
            }
            body = await reader.readexactly(int(headers.get("content-length", "0")))
        return RawAnswer(int(status_line.split()[1]), headers, body)
    finally:
        writer.close()


async def send_and_drop(url: str, data: bytes) -> None:
    """Send ``data`` and close the connection without waiting for anything."""
    address = urlsplit(url)
    _, writer = await asyncio.open_connection(address.hostname, address.port)
    writer.write(data)
    await writer.drain()
    writer.close()
    await writer.wait_closed()
