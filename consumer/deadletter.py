"""The dead-letter topic: the original record, unchanged, plus headers saying what went wrong."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

from confluent_kafka import Message
from pydantic import ValidationError

from consumer.clients import KafkaClients
from consumer.errors import DeadLetterError, DeadLetterTooLargeError
from consumer.producing import AcknowledgedProducer, Headers
from schemas.topics import (
    DLQ_HEADER_PREFIX,
    HEADER_DLQ_ATTEMPTS,
    HEADER_DLQ_ERROR_CLASS,
    HEADER_DLQ_ERROR_MESSAGE,
    HEADER_DLQ_FIRST_FAILURE,
    HEADER_DLQ_GROUP,
    HEADER_DLQ_LAST_FAILURE,
    HEADER_DLQ_OFFSET,
    HEADER_DLQ_PARTITION,
    HEADER_DLQ_STAGE,
    HEADER_DLQ_TIMESTAMP,
    HEADER_DLQ_TOPIC,
    HEADER_DLQ_VALUE_OMITTED,
)

_log = logging.getLogger(__name__)

Stage = Literal["decode", "validate", "sink"]
"""Where a record failed: reading its bytes (``decode``), checking its values and deciding what it
changes (``validate``: the contract's rules, the clock-skew bound, dedupe and the customer-state
fold), or writing it (``sink``: the CRM's answer, or the HTTP client refusing the request)."""

# The dead-letter header keeps the first 1000 characters of the reason: every reason this code
# writes fits, and a record's headers stay far below the broker's default message size limit.
MESSAGE_HEADER_LIMIT: Final = 1000
# A dead letter sent without its value (too large) keeps its key up to this size: a customer id
# is at most 256 characters (schemas.identifiers), so only another producer's key is longer, and
# such a key may be what made the record too large.
MAX_KEPT_KEY_BYTES: Final = 1024


def describe_error(error: BaseException, *, limit: int = MESSAGE_HEADER_LIMIT) -> str:
    """What went wrong, without the values that did it: for contract violations the fields and
    the rules they broke (pydantic's own text quotes the input, and ``caller_id`` is personal
    data); otherwise the message, its control characters escaped, cut at ``limit`` characters.
    CRM error bodies are reduced before they get here (:mod:`consumer.sink.redact`)."""
    cause = error.__cause__
    if isinstance(cause, ValidationError):
        text = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'event'}: {e['msg']}" for e in cause.errors()
        )
    else:
        text = str(error) or type(error).__name__
    text = text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class Failure:
    stage: Stage
    error: BaseException
    attempts: int
    first_failure: datetime
    last_failure: datetime


def dead_letter_headers(message: Message, failure: Failure, group_id: str) -> Headers:
    """The record's own headers, then the context headers (all under :data:`DLQ_HEADER_PREFIX`).

    A record that was dead-lettered before (and replayed) arrives with the old context headers:
    they are dropped and replaced by this failure's, so a record carries one context, never a
    pile of them. Its history is in ``segstream.replay.count`` and the replay provenance headers.
    """
    timestamp_type, timestamp = message.timestamp()
    context = {
        HEADER_DLQ_TOPIC: message.topic(),
        HEADER_DLQ_PARTITION: message.partition(),
        HEADER_DLQ_OFFSET: message.offset(),
        HEADER_DLQ_TIMESTAMP: timestamp if timestamp_type else None,
        HEADER_DLQ_STAGE: failure.stage,
        HEADER_DLQ_ERROR_CLASS: type(failure.error).__name__,
        HEADER_DLQ_ERROR_MESSAGE: describe_error(failure.error),
        HEADER_DLQ_ATTEMPTS: failure.attempts,
        HEADER_DLQ_FIRST_FAILURE: failure.first_failure.isoformat(timespec="milliseconds"),
        HEADER_DLQ_LAST_FAILURE: failure.last_failure.isoformat(timespec="milliseconds"),
        HEADER_DLQ_GROUP: group_id,
    }
    raw = message.headers() or []
    items = raw.items() if isinstance(raw, dict) else raw
    original: Headers = [(k, v) for k, v in items if not k.startswith(DLQ_HEADER_PREFIX)]
    added: Headers = [(k, str(v).encode()) for k, v in context.items() if v is not None]
    return [*original, *added]


class DeadLetterPublisher:
    """Awaits the broker's ack for every dead letter: the source offset moves only after it."""

    def __init__(
        self, clients: KafkaClients, topic: str, group_id: str, *, delivery_timeout_ms: int
    ) -> None:
        self._topic = topic
        self._group_id = group_id
        self._producer = AcknowledgedProducer(
            clients,
            client_id="segstream-consumer-dlq",
            delivery_timeout_ms=delivery_timeout_ms,
            error=lambda reason: DeadLetterError(
                f"dead-letter topic did not acknowledge: {reason}"
            ),
            too_large=lambda reason: DeadLetterTooLargeError(
                f"dead-letter topic did not take the record: {reason}"
            ),
        )

    async def send(self, message: Message, failure: Failure) -> None:
        """Return once the broker has the dead letter; raise :class:`DeadLetterError` (fatal:
        the consumer stops before the record's offset) for any failure, whatever its kind.

        A record that, with its headers, is larger than the dead-letter topic takes is sent
        again as its key and the context headers only, :data:`HEADER_DLQ_VALUE_OMITTED` giving
        the size of the value left out: the same bytes could never be taken, and a consumer
        that stopped on them would stop again on every restart, holding the partition forever.
        The original stays at its topic, partition and offset (the context says where)."""
        headers = dead_letter_headers(message, failure, self._group_id)
        try:
            try:
                await self._producer.produce(
                    self._topic, key=message.key(), value=message.value(), headers=headers
                )
            except DeadLetterTooLargeError as exc:
                value = message.value() or b""
                _log.warning(
                    "dead letter too large for its topic; sending its key and context only",
                    extra={
                        "topic": message.topic(),
                        "partition": message.partition(),
                        "offset": message.offset(),
                        "value_bytes": len(value),
                        "reason": str(exc),
                    },
                )
                context: Headers = [(k, v) for k, v in headers if k.startswith(DLQ_HEADER_PREFIX)]
                omitted = (HEADER_DLQ_VALUE_OMITTED, str(len(value)).encode())
                key = message.key()
                kept = key if key is None or len(key) <= MAX_KEPT_KEY_BYTES else None
                await self._producer.produce(
                    self._topic, key=kept, value=None, headers=[*context, omitted]
                )
        except DeadLetterError:
            raise
        except Exception as exc:
            raise DeadLetterError(
                f"cannot produce to the dead-letter topic {self._topic}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    def close(self, timeout: float = 10.0) -> None:
        self._producer.close(timeout)
