"""A pool of validly signed requests for the load generator, in vegeta's JSON target format.

Standard Webhooks signatures are only valid for 5 minutes, so a pool is signed just before the
attack that uses it; every request is a distinct, realistic event (the generator's payloads).
"""

from __future__ import annotations

import base64
import json
import random
from datetime import UTC, datetime
from pathlib import Path

from standardwebhooks.webhooks import Webhook

from sandbox.generator.events import valid_event
from sandbox.generator.population import ZipfCustomers

EVENTS_PATH = "/v1/interactions/completed"


def write_signed_targets(
    path: Path,
    url: str,
    secret: str,
    count: int,
    seed: int = 7,
    *,
    customers: int = 5000,
    exponent: float = 1.1,
) -> int:
    """``count`` signed requests to ``url`` about ``customers`` customers picked with a Zipf
    ``exponent``; returns the mean body size in bytes. Event ids are new on every call."""
    rng = random.Random(seed)
    population = ZipfCustomers(customers, exponent, rng)
    webhook = Webhook(secret)
    now = datetime.now(UTC)
    timestamp = str(int(now.timestamp()))
    total = 0
    with path.open("w", encoding="utf-8") as out:
        for seq in range(1, count + 1):
            event = valid_event(population.pick(), seq, "bench", rng)
            total += len(event.body)
            target = {
                "method": "POST",
                "url": url + EVENTS_PATH,
                "body": base64.b64encode(event.body.encode()).decode(),
                "header": {
                    "Content-Type": ["application/json"],
                    "webhook-id": [event.webhook_id],
                    "webhook-timestamp": [timestamp],
                    "webhook-signature": [webhook.sign(event.webhook_id, now, event.body)],
                },
            }
            out.write(json.dumps(target, separators=(",", ":")) + "\n")
    return total // count
