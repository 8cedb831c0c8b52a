"""Which of the Kafka client's errors are fatal, and what each means for the operator.

librdkafka raises a fatal error when the client can do nothing more: for a consumer, when a
static member is fenced (KIP-345: another instance joined with its ``group.instance.id``). It
reports it on every path it has, and they are not equally quick: an ``OffsetCommit`` answered
``FENCED_INSTANCE_ID`` reaches the commit callback at once, but the error event joins the
consumer's queue behind the records already fetched, so a consumer with a backlog reads it
seconds later and would keep writing those records as a fenced member (measured here: commit
callback 0.7 s after the other instance joined, error event 18 s later). The engine listens
on both.
"""

from __future__ import annotations

from confluent_kafka import KafkaError

from consumer.errors import FatalClientError, FencedInstanceError


def fatal_error(error: KafkaError, instance_id: str | None) -> FatalClientError | None:
    """``error`` as the fatal condition it is, or ``None`` when the client can carry on."""
    fenced = error.code() == KafkaError.FENCED_INSTANCE_ID
    if not (fenced or error.fatal() or error.code() == KafkaError._FATAL):
        return None
    reason = error.str()
    if fenced or "fenced" in reason.lower():
        return FencedInstanceError(
            f"fenced: another instance joined the group with group.instance.id "
            f"{instance_id!r}; each instance needs an id of its own ({reason})"
        )
    return FatalClientError(f"Kafka client failed fatally: {reason}")
