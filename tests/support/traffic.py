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

from sandbox.records import make_event, produce


@dataclass
class Traffic:
    customers: list[str] = field(default_factory=list)


@contextmanager
def steady_traffic(
    bootstrap: str, topic: str, *, interval_s: float = 0.2, prefix: str = "FLOW-"
) -> Iterator[Traffic]:
    """One healthy event for a new customer every ``interval_s`` while the block runs."""
    traffic = Traffic()
    stop = threading.Event()

    def run() -> None:
        number = 0
        while not stop.is_set():
            customer = f"{prefix}{number:05d}"
            produce(bootstrap, topic, [make_event(customer, 1)])
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
