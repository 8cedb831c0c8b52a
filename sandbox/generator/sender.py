"""The sending side of the generator: a target rate, per-customer order, retries, a ledger.

Every customer's events are sent strictly one after another: the next one only after the previous
one got its 202 (a 503, a timeout or a dropped connection means the same event again, with the
same ``webhook-id`` and idempotency key, after ``Retry-After``). Different customers are sent
concurrently. That is how a careful real sender keeps per-customer order across a bridge it
cannot see into, and it is what the ledger's ``seq`` lets others check end to end.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import random
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import aiohttp
from standardwebhooks.webhooks import Webhook

from sandbox.generator.events import OutgoingEvent, malformed_request, valid_event
from sandbox.generator.ledger import LedgerEntry, LedgerWriter
from sandbox.generator.population import ZipfCustomers

EVENTS_PATH: Final = "/v1/interactions/completed"
# A sender backs off exponentially between retries when the bridge gives no Retry-After, and
# never waits longer than this between two attempts at one event.
_MAX_BACKOFF_S: Final = 5.0
_PROGRESS_EVERY_S: Final = 5.0
_log = logging.getLogger("sandbox.generator")


@dataclass(frozen=True)
class GeneratorConfig:
    url: str
    """The bridge's base URL, e.g. ``http://127.0.0.1:8080``."""
    ledger: Path
    secret: str | None = None
    """Standard Webhooks secret (``whsec_...``); ``None`` sends unsigned requests."""
    rate: float = 50.0
    """New events per second (retries and duplicates come on top)."""
    duration_s: float | None = 60.0
    max_events: int | None = None
    customers: int = 1000
    zipf_exponent: float = 1.1
    malformed_share: float = 0.01
    duplicate_share: float = 0.02
    """Share of accepted events sent once more, as a sender that missed the 202 would."""
    seed: int | None = None
    max_event_bytes: int = 10 * 1024
    request_timeout_s: float = 15.0
    drain_timeout_s: float = 30.0
    """After the run: how long events still waiting (e.g. for a broker) may take to get in."""
    max_pending: int = 10_000
    """Events scheduled but not yet accepted; at the bound the schedule waits (rate drops)."""
    connections: int = 256


@dataclass
class GeneratorSummary:
    run_id: str
    ledger: str
    elapsed_s: float = 0.0
    target_rate: float = 0.0
    scheduled: int = 0
    accepted: int = 0
    accepted_rate: float = 0.0
    retries: int = 0
    abandoned: int = 0
    """Valid events never accepted (still waiting when the drain timeout ran out)."""
    valid_rejected: int = 0
    """Valid events the bridge refused with a 4xx (a bug or a wrong secret, never expected)."""
    duplicates_sent: int = 0
    malformed_sent: int = 0
    malformed_unexpected: int = 0
    """Malformed requests answered other than the expected status (202 would be a bridge bug)."""
    customers_seen: int = 0
    responses: dict[str, int] = field(default_factory=dict)
    """Every answer by status, retries and duplicates included; ``error`` = no HTTP answer."""
    channels: dict[str, int] = field(default_factory=dict)
    malformed: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class EventGenerator:
    def __init__(self, config: GeneratorConfig) -> None:
        if config.rate <= 0:
            raise ValueError("rate must be > 0")
        self._config = config
        self._rng = random.Random(config.seed)
        self._population = ZipfCustomers(config.customers, config.zipf_exponent, self._rng)
        self._webhook = Webhook(config.secret) if config.secret else None
        self._run_id = uuid.uuid4().hex[:12]
        self._queues: dict[str, collections.deque[OutgoingEvent]] = {}
        self._next_seq: Counter[str] = Counter()
        self._sending: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._pending = 0
        self._space = asyncio.Event()
        self._responses: Counter[str] = Counter()
        self._channels: Counter[str] = Counter()
        self._malformed: Counter[str] = Counter()
        self._summary = GeneratorSummary(run_id=self._run_id, ledger=str(config.ledger))
        self._session: aiohttp.ClientSession | None = None
        self._ledger: LedgerWriter | None = None

    async def run(self, stop: asyncio.Event | None = None) -> GeneratorSummary:
        """Send until the duration or event count is reached or ``stop`` is set, then give the
        events still waiting ``drain_timeout_s`` to get in."""
        config = self._config
        stop = stop or asyncio.Event()
        started = time.monotonic()
        connector = aiohttp.TCPConnector(limit=config.connections)
        timeout = aiohttp.ClientTimeout(total=config.request_timeout_s)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            self._session = session
            with LedgerWriter(config.ledger) as ledger:
                self._ledger = ledger
                progress = asyncio.create_task(self._report_progress(started))
                try:
                    await self._schedule(started, stop)
                    await self._drain()
                finally:
                    progress.cancel()
        summary = self._summary
        summary.elapsed_s = round(time.monotonic() - started, 3)
        summary.target_rate = config.rate
        summary.accepted_rate = round(summary.accepted / max(summary.elapsed_s, 1e-9), 1)
        summary.abandoned = sum(len(queue) for queue in self._queues.values())
        summary.customers_seen = len(self._next_seq)
        summary.responses = dict(sorted(self._responses.items()))
        summary.channels = dict(sorted(self._channels.items()))
        summary.malformed = dict(sorted(self._malformed.items()))
        return summary

    async def _schedule(self, started: float, stop: asyncio.Event) -> None:
        config = self._config
        deadline = started + config.duration_s if config.duration_s is not None else None
        count = 0
        while not stop.is_set():
            if config.max_events is not None and count >= config.max_events:
                return
            due = started + count / config.rate
            if deadline is not None and due >= deadline:
                return
            delay = due - time.monotonic()
            if delay > 0:
                # Short naps keep a stop request prompt without a task per scheduled event.
                await asyncio.sleep(min(delay, 0.05))
                continue
            while self._pending >= config.max_pending and not stop.is_set():
                self._space.clear()
                await self._space.wait()
            count += 1
            if self._rng.random() < config.malformed_share:
                self._spawn(self._send_malformed())
            else:
                self._enqueue()

    def _enqueue(self) -> None:
        customer = self._population.pick()
        self._next_seq[customer] += 1
        event = valid_event(customer, self._next_seq[customer], self._run_id, self._rng)
        self._summary.scheduled += 1
        self._pending += 1
        self._queues.setdefault(customer, collections.deque()).append(event)
        if customer not in self._sending:  # nobody is sending for this customer: start its sender
            self._sending.add(customer)
            self._spawn(self._serve_customer(customer))

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain(self) -> None:
        if not self._tasks:
            return
        _, still_running = await asyncio.wait(
            set(self._tasks), timeout=self._config.drain_timeout_s
        )
        for task in still_running:
            task.cancel()
        if still_running:
            await asyncio.wait(still_running)

    async def _serve_customer(self, customer: str) -> None:
        """The one sender of ``customer``'s events, in order; it ends when none is waiting (the
        check and the exit happen without an ``await`` between them, so no event is orphaned)."""
        queue = self._queues[customer]
        while queue:
            event = queue[0]
            accepted = await self._deliver(event)
            queue.popleft()
            self._pending -= 1
            self._space.set()
            if accepted and self._rng.random() < self._config.duplicate_share:
                # The sender "missed" the 202 and sends the very same event again.
                self._summary.duplicates_sent += 1
                await self._post(event.body.encode(), event.webhook_id, "application/json")
        self._sending.discard(customer)

    async def _deliver(self, event: OutgoingEvent) -> bool:
        attempts = 0
        while True:
            attempts += 1
            status, answer, retry_after = await self._post(
                event.body.encode(), event.webhook_id, "application/json"
            )
            if status == 202:
                self._accepted(event, attempts, answer)
                return True
            if status is not None and status < 500 and status != 429:
                self._summary.valid_rejected += 1
                _log.error(
                    "valid event refused",
                    extra={"event_id": event.event_id, "status": status, "answer": answer},
                )
                return False
            self._summary.retries += 1
            backoff = min(_MAX_BACKOFF_S, 0.1 * 2 ** min(attempts, 6))
            await asyncio.sleep(retry_after if retry_after is not None else backoff)

    def _accepted(self, event: OutgoingEvent, attempts: int, answer: Any) -> None:
        self._summary.accepted += 1
        self._channels[event.channel] += 1
        if self._ledger is None:
            raise RuntimeError("the generator is not running")
        self._ledger.write(
            LedgerEntry(
                event_id=event.event_id,
                customer_id=event.customer_id,
                seq=event.seq,
                webhook_id=event.webhook_id,
                attempts=attempts,
                accepted_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
                partition=int(answer.get("partition", -1)) if isinstance(answer, dict) else -1,
                offset=int(answer.get("offset", -1)) if isinstance(answer, dict) else -1,
            )
        )

    async def _send_malformed(self) -> None:
        request = malformed_request(self._rng, self._config.max_event_bytes)
        self._summary.malformed_sent += 1
        self._malformed[request.kind] += 1
        status, _, _ = await self._post(
            request.body, f"msg_{uuid.uuid4().hex}", request.content_type
        )
        if status != request.expected_status:
            self._summary.malformed_unexpected += 1
            _log.error(
                "malformed request answered unexpectedly",
                extra={"kind": request.kind, "status": status, "expected": request.expected_status},
            )

    async def _post(
        self, body: bytes, webhook_id: str, content_type: str
    ) -> tuple[int | None, Any, float | None]:
        """``(status, JSON answer, Retry-After)``; status ``None`` when no answer came at all."""
        if self._session is None:
            raise RuntimeError("the generator is not running")
        headers = {"Content-Type": content_type}
        if self._webhook is not None:
            # A retry is signed anew (fresh timestamp) under the same webhook-id, as Standard
            # Webhooks senders do; a body that is not UTF-8 text cannot be signed at all.
            now = datetime.now(UTC)
            text = body.decode("utf-8", errors="replace")
            headers |= {
                "webhook-id": webhook_id,
                "webhook-timestamp": str(int(now.timestamp())),
                "webhook-signature": self._webhook.sign(webhook_id, now, text),
            }
        try:
            async with self._session.post(
                self._config.url.rstrip("/") + EVENTS_PATH, data=body, headers=headers
            ) as response:
                answer = await response.json(content_type=None)
                self._responses[str(response.status)] += 1
                return response.status, answer, _retry_after(response.headers.get("Retry-After"))
        except (aiohttp.ClientError, TimeoutError, ValueError):
            self._responses["error"] += 1
            return None, None, None

    async def _report_progress(self, started: float) -> None:
        while True:
            await asyncio.sleep(_PROGRESS_EVERY_S)
            _log.info(
                "progress %s",
                json.dumps(
                    {
                        "elapsed_s": round(time.monotonic() - started, 1),
                        "scheduled": self._summary.scheduled,
                        "accepted": self._summary.accepted,
                        "pending": self._pending,
                        "responses": dict(self._responses),
                    }
                ),
            )


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
