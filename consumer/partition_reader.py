"""Reading a stretch of one partition back, outside any consumer group (restores, rebuilds).

A standalone consumer is assigned the partition (never subscribed, never committing), so reading
touches no group's offsets. It stops at ``end`` (exclusive) or at the partition's end, whichever
comes first: an offset may belong to a transaction marker that no consumer ever sees, so "the
last offset before ``end``" is not always delivered, and end-of-partition must end the read too.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Final

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from consumer.clients import KafkaClients
from consumer.errors import ConsumerError

# Records per consume() call: large, since callers only read headers or small values.
_BATCH: Final = 1_000
# Upper bound of one consume() wait, so the deadline is checked at least this often.
_POLL_S: Final = 0.5


class PartitionReadError(ConsumerError):
    """The partition could not be read within the deadline, or the broker refused."""


def standalone_consumer(
    clients: KafkaClients, client_id: str, extra: Mapping[str, object] | None = None
) -> Consumer:
    """A consumer for assign()-only reads: commits off, EOF reported, no group state created."""
    return clients.consumer(
        client_id,
        {
            **(extra or {}),
            # librdkafka wants a group id even for a consumer that only assigns; a throwaway one
            # with commits off never creates group state on the broker.
            "group.id": f"{client_id}-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
        },
    )


def watermarks(
    consumer: Consumer,
    topic: str,
    partition: int,
    deadline: float,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[int, int]:
    """(low, high) offsets of the partition; raises :class:`PartitionReadError`."""
    try:
        low, high = consumer.get_watermark_offsets(
            TopicPartition(topic, partition), timeout=max(deadline - clock(), 0.001)
        )
    except KafkaException as exc:
        raise PartitionReadError(f"cannot locate {topic}[{partition}]: {exc}") from exc
    return int(low), int(high)


def read_range(
    consumer: Consumer,
    topic: str,
    partition: int,
    *,
    start: int,
    end: int,
    deadline: float,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[Message]:
    """Records of ``[start, end)`` in offset order (``start`` may be ``OFFSET_BEGINNING``).

    Raises :class:`PartitionReadError` when ``deadline`` (an instant of ``clock``, a monotonic
    clock in seconds) passes first or the broker reports a fatal or permanent error; what was
    yielded stays yielded.
    """
    if end <= 0 or (start != OFFSET_BEGINNING and start >= end):
        return
    consumer.assign([TopicPartition(topic, partition, start)])
    while True:
        remaining = deadline - clock()
        if remaining <= 0:
            raise PartitionReadError(f"reading {topic}[{partition}] up to offset {end} timed out")
        for message in consumer.consume(_BATCH, min(remaining, _POLL_S)):
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    return
                if error.fatal() or not error.retriable():
                    raise PartitionReadError(f"reading {topic}[{partition}] failed: {error.str()}")
                continue
            offset = message.offset() or 0
            if offset >= end:
                return
            yield message
            if offset == end - 1:
                return
