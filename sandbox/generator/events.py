"""What a contact-center flow sends: valid Architect payloads, and malformed ones too."""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from schemas.model import Channel

CHANNELS: Final = tuple(Channel)
_SUMMARIES: Final = (
    "resolved-billing",
    "resolved-technical",
    "escalated",
    "callback-scheduled",
    "cancellation-request",
    "sale-completed",
    "no-resolution",
)
_TAGS: Final = ("churn_risk", "upsell_opportunity", "vip", "complaint", "loyal", "new_customer")


@dataclass(frozen=True)
class OutgoingEvent:
    """One event of one customer, ready to send (and to send again, byte for byte)."""

    customer_id: str
    seq: int
    channel: str
    event_id: str
    webhook_id: str
    body: str


@dataclass(frozen=True)
class MalformedRequest:
    kind: str
    body: bytes
    content_type: str
    expected_status: int


def valid_event(customer_id: str, seq: int, run_id: str, rng: random.Random) -> OutgoingEvent:
    channel = CHANNELS[rng.randrange(len(CHANNELS))]
    # Ids come from the OS, not from ``rng``: a second run with the same seed must not repeat
    # event ids (downstream dedupe would silently drop them).
    contact_id = str(uuid.uuid4())
    completed = datetime.now(UTC)
    started = completed - timedelta(seconds=rng.randint(20, 1800))
    start_text = started.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    payload: dict[str, Any] = {
        "customerId": customer_id,
        "contactId": contact_id,
        "channel": channel.value,
        "startTime": start_text,
        "endTime": completed.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "interactionSummary": rng.choice(_SUMMARIES),
        "sentimentScore": round(rng.uniform(-1.0, 1.0), 3),
        "tags": rng.sample(_TAGS, rng.randint(0, 3)),
        "idempotency_key": f"{contact_id}-{start_text}",
        "queueId": f"queue-{rng.randint(1, 12)}",
        "agentId": f"agent-{rng.randint(1, 80)}",
        "attributes": {"seq": str(seq), "run": run_id},
    }
    if channel in (Channel.VOICE, Channel.CALLBACK):
        payload["callerId"] = f"+3247{rng.randint(1_000_000, 9_999_999)}"
    return OutgoingEvent(
        customer_id=customer_id,
        seq=seq,
        channel=channel.value,
        event_id=payload["idempotency_key"],
        webhook_id=f"msg_{uuid.uuid4().hex}",
        body=json.dumps(payload, separators=(",", ":")),
    )


def malformed_request(rng: random.Random, max_event_bytes: int) -> MalformedRequest:
    """One of the mistakes real senders make, with the status the bridge must answer."""
    base: dict[str, Any] = {
        "customerId": f"C-bad-{rng.randint(1, 10**6)}",
        "contactId": str(uuid.uuid4()),
        "channel": "chat",
        "startTime": "2026-11-28T10:15:00Z",
        "tags": [],
    }
    kind = rng.choice(
        (
            "truncated-json",
            "missing-customer-id",
            "sentiment-out-of-range",
            "unknown-channel",
            "tag-too-long",
            "oversized",
            "wrong-content-type",
        )
    )
    content_type = "application/json"
    status = 422
    if kind == "truncated-json":
        body, status = json.dumps(base)[:-7].encode(), 400
    elif kind == "missing-customer-id":
        del base["customerId"]
        body = json.dumps(base).encode()
    elif kind == "sentiment-out-of-range":
        body = json.dumps({**base, "sentimentScore": 1.5}).encode()
    elif kind == "unknown-channel":
        body = json.dumps({**base, "channel": "carrier-pigeon"}).encode()
    elif kind == "tag-too-long":
        body = json.dumps({**base, "tags": ["x" * 65]}).encode()
    elif kind == "oversized":
        padding = "x" * (max_event_bytes + 1)
        body, status = json.dumps({**base, "interactionSummary": padding}).encode(), 413
    else:
        body, content_type, status = json.dumps(base).encode(), "text/plain", 415
    return MalformedRequest(kind, body, content_type, status)
