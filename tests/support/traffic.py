"""A flowing stream of healthy events, for tests that need one beside what they exercise.

The consumer dead-letters a rejected payload only once another customer's write, sent after it,
succeeds (consumer/rejections.py: that is how it tells a bad payload from a sink that rejects
everything). In production the stream flows; a test whose topic holds nothing but rejected events
is a quiet stream, in which the consumer rightly keeps waiting. This adds the flow.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from confluent_kafka import Producer

from sandbox.records import make_event, record_headers
from schemas.codec import EventCodec


@dataclass
class Traffic:
    customers: list[str] = field(default_factory=list)


@contextmanager
def steady_traffic(
    bootstrap: str, topic: str, *, interval_s: float = 0.2, prefix: str = "FLOW-"
) -> Iterator[Traffic]:
    """One healthy event for a new customer every ``interval_s`` while the block runs; every
    one of them acknowledged by the broker when the block ends."""
    traffic = Traffic()
    stop = threading.Event()
    codec = EventCodec(topic)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})

    def run() -> None:
        number = 0
        while not stop.is_set():
            customer = f"{prefix}{number:05d}"
            event = make_event(customer, 1)
            producer.produce(
                topic,
                key=customer.encode(),
                value=codec.encode(event),
                headers=record_headers(event, codec),
            )
            producer.poll(0)
            traffic.customers.append(customer)
            number += 1
            stop.wait(interval_s)

    thread = threading.Thread(target=run, name="steady-traffic", daemon=True)
    thread.start()
    try:
        yield traffic
    finally:
        stop.set()
        thread.join(timeout=30)
        if producer.flush(30):
            raise RuntimeError("steady traffic: records not acknowledged by the broker")
