"""Events written straight to a topic, keyed and headed as the bridge writes them, with a known
order per customer: for tests and benchmarks that are about the consumer, not the bridge."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from confluent_kafka import KafkaError, Message, Producer

from kafka_config.logs import librdkafka_logger
from schemas.codec import EventCodec
from schemas.model import Channel, InteractionCompleted
from schemas.topics import HEADER_CONTENT_TYPE, HEADER_EVENT_ID, HEADER_SOURCE

BASE_TIME = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


def make_event(
    customer_id: str, sequence: int, *, event_id: str | None = None
) -> InteractionCompleted:
    """The ``sequence``-th interaction of a customer; its summary says which one it was."""
    started = BASE_TIME + timedelta(seconds=sequence)
    return InteractionCompleted(
        event_id=event_id or f"{customer_id}-contact-{sequence}",
        customer_id=customer_id,
        contact_id=f"{customer_id}-contact-{sequence}",
        channel=Channel.VOICE,
        started_at=started,
        completed_at=started + timedelta(milliseconds=500),
        interaction_summary=f"seq-{sequence}",
        sentiment_score=round((sequence % 21) / 10 - 1, 1),
        tags=[f"tag-{sequence % 5}"],
        attributes={"seq": str(sequence)},
    )


def interleaved_events(customers: int, total: int, seed: int = 7) -> list[InteractionCompleted]:
    """``total`` events over ``customers`` customers, shuffled together, ordered per customer."""
    rng = random.Random(seed)
    ids = [f"C-{n:05d}" for n in range(customers)]
    sequence: dict[str, int] = defaultdict(int)
    events = []
    for _ in range(total):
        customer = rng.choice(ids)
        sequence[customer] += 1
        events.append(make_event(customer, sequence[customer]))
    return events


def ids_by_customer(events: list[InteractionCompleted]) -> dict[str, list[str]]:
    """Each customer's event ids in the order they were sent."""
    order: dict[str, list[str]] = defaultdict(list)
    for event in events:
        order[event.customer_id].append(event.event_id)
    return dict(order)


@dataclass
class Produced:
    event: InteractionCompleted
    partition: int
    offset: int


def record_headers(
    event: InteractionCompleted, codec: EventCodec
) -> list[tuple[str, str | bytes | None]]:
    """The headers the bridge puts on a record (``source`` is ``test``)."""
    return [
        (HEADER_EVENT_ID, event.event_id.encode()),
        (HEADER_CONTENT_TYPE, codec.content_type.encode()),
        (HEADER_SOURCE, b"test"),
    ]


def produce(
    bootstrap_servers: str,
    topic: str,
    events: list[InteractionCompleted],
    *,
    timestamps_ms: Sequence[int] | None = None,
) -> list[Produced]:
    """Write the events keyed by customer id with the bridge's headers; wait for every ack.

    ``timestamps_ms``: each record's timestamp (epoch ms; default: the producer's clock), for
    records that look as if written earlier, a consumer lagging behind them."""
    codec = EventCodec(topic)
    producer = Producer(
        {
            "bootstrap.servers": bootstrap_servers,
            "enable.idempotence": True,
            "linger.ms": 5,
            "logger": librdkafka_logger(),
        }
    )
    results: list[Produced | None] = [None] * len(events)

    failures: list[str] = []

    def acked(index: int) -> Callable[[KafkaError | None, Message], None]:
        def callback(error: KafkaError | None, message: Message) -> None:
            if error is not None:
                failures.append(error.str())
                return
            results[index] = Produced(
                events[index], message.partition() or 0, message.offset() or 0
            )

        return callback

    for index, event in enumerate(events):
        while True:
            try:
                producer.produce(
                    topic,
                    key=event.customer_id.encode(),
                    value=codec.encode(event),
                    headers=record_headers(event, codec),
                    on_delivery=acked(index),
                    timestamp=0 if timestamps_ms is None else timestamps_ms[index],
                )
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    remaining = producer.flush(60)
    if remaining or failures:
        raise RuntimeError(
            f"{remaining} records unacknowledged, {len(failures)} failed: {failures[:3]}"
        )
    return [r for r in results if r is not None]


def produce_raw(
    bootstrap_servers: str,
    topic: str,
    key: bytes,
    value: bytes,
    headers: Sequence[tuple[str, bytes]],
) -> tuple[int, int]:
    producer = Producer({"bootstrap.servers": bootstrap_servers, "logger": librdkafka_logger()})
    position: list[tuple[int, int]] = []

    def acked(error: KafkaError | None, message: Message) -> None:
        if error is None:
            position.append((message.partition() or 0, message.offset() or 0))

    producer.produce(topic, key=key, value=value, headers=list(headers), on_delivery=acked)
    producer.flush(30)
    return position[0]
