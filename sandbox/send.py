"""Send one event to the bridge, signed the Standard Webhooks way, like a real sender."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import aiohttp
from standardwebhooks.webhooks import Webhook


def signed_headers(secret: str, body: str, message_id: str | None = None) -> dict[str, str]:
    now = datetime.now(UTC)
    message_id = message_id or f"msg_{uuid.uuid4().hex}"
    return {
        "Content-Type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, now, body),
    }


async def send_event(url: str, secret: str, payload: Any) -> tuple[int, str]:
    body = json.dumps(payload)
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=signed_headers(secret, body)) as response,
    ):
        return response.status, await response.text()
