"""The end-to-end latency baseline: the same path as segstream's consumer, without its policies.

A Kafka consumer (the same client, auto-commit) that decodes each record and posts the same
update body to the CRM at once, up to ``--concurrency`` requests in flight: no per-customer
order, no dedupe, no customer state or changelog, no rate limit, no retries, no dead letters.
Whatever latency it shows is what Kafka, the client, the simulator and this machine cost; what
segstream adds on top is what its policies cost.

``python -m bench.bare_consumer`` with ``KAFKA_BOOTSTRAP_SERVERS``, ``BENCH_TOPIC``,
``BENCH_GROUP``, ``BENCH_CRM_URL``, ``BENCH_CRM_TOKEN_FILE``, ``BENCH_PORT`` (``/healthz`` answers
200 once partitions are assigned) and ``BENCH_CONCURRENCY`` (default 100).
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from confluent_kafka import Consumer, Message

from consumer.pipeline import customer_update
from consumer.sink import CustomerUpdate
from consumer.sink.http import update_body
from consumer.state import decide
from consumer.state.versions import NO_VERSIONS
from schemas.codec import EventCodec
from schemas.model import InteractionCompleted


def first_update(event: InteractionCompleted) -> CustomerUpdate:
    """The write segstream makes for a customer's first event: every attribute it carries."""
    return customer_update(event, decide(event, NO_VERSIONS, None), event.event_id)


def request_of(codec: EventCodec, message: Message) -> tuple[str, dict[str, Any]]:
    """(Idempotency-Key, body) of the record's write."""
    event = codec.decode(message.value() or b"")
    return event.event_id, update_body(first_update(event))


def take(consumer: Consumer) -> list[Message]:
    """Block for the first record only, then take what is there (as segstream's engine does:
    ``consume(n, timeout)`` would hold a trickle for the whole timeout)."""
    first = consumer.poll(0.1)
    return [] if first is None else [first, *consumer.consume(499, 0)]


async def run(token: str) -> None:
    topic = os.environ["BENCH_TOPIC"]
    crm = os.environ["BENCH_CRM_URL"]
    concurrency = int(os.environ.get("BENCH_CONCURRENCY", "100"))
    codec = EventCodec(topic)
    assigned = asyncio.Event()
    loop = asyncio.get_running_loop()
    consumer = Consumer(
        {
            "bootstrap.servers": os.environ["KAFKA_BOOTSTRAP_SERVERS"],
            "group.id": os.environ["BENCH_GROUP"],
            "auto.offset.reset": "earliest",
            "enable.auto.commit": True,
        }
    )

    def on_assign(*_: Any) -> None:
        loop.call_soon_threadsafe(assigned.set)

    consumer.subscribe([topic], on_assign=on_assign)

    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(status=200 if assigned.is_set() else 503)

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", int(os.environ["BENCH_PORT"])).start()

    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    slots = asyncio.Semaphore(concurrency)
    headers = {"Authorization": f"Bearer {token}"}
    pending: set[asyncio.Task[None]] = set()
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=concurrency),
        timeout=aiohttp.ClientTimeout(total=5),
    ) as session:

        async def post(key: str, body: dict[str, Any]) -> None:
            try:
                async with session.post(
                    crm + "/v1/customers/update",
                    json=body,
                    headers={**headers, "Idempotency-Key": key},
                ) as response:
                    await response.read()
            finally:
                slots.release()

        while not stop.is_set():
            messages = await loop.run_in_executor(None, take, consumer)
            for message in messages:
                if message.error():
                    continue
                key, body = request_of(codec, message)
                await slots.acquire()
                task = asyncio.create_task(post(key, body))
                pending.add(task)
                task.add_done_callback(pending.discard)
        await asyncio.gather(*pending, return_exceptions=True)
    await loop.run_in_executor(None, consumer.close)
    await runner.cleanup()


def main() -> None:
    asyncio.run(run(Path(os.environ["BENCH_CRM_TOKEN_FILE"]).read_text().strip()))


if __name__ == "__main__":
    main()
