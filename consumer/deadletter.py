"""The dead-letter topic: the original record, unchanged, plus headers saying what went wrong."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

from confluent_kafka import Message
from pydantic import ValidationError

from consumer.errors import DeadLetterError
from consumer.producing import AcknowledgedProducer, Headers
from schemas.topics import DLQ_HEADER_PREFIX

Stage = Literal["decode", "validate", "sink"]
"""Where a record failed: reading its bytes (``decode``), checking its values and deciding what it
changes (``validate``: the contract's rules, the clock-skew bound, dedupe and the customer-state
fold), or writing it (``sink``: the CRM's answer, or the HTTP client refusing the request)."""

# The dead-letter header keeps the first 1000 characters of the reason: every reason this code
# writes fits, and a record's headers stay far below the broker's default message size limit.
MESSAGE_HEADER_LIMIT: Final = 1000


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
    """Context headers, each under :data:`DLQ_HEADER_PREFIX`, after the original headers."""
    timestamp_type, timestamp = message.timestamp()
    context = {
        "topic": message.topic(),
        "partition": message.partition(),
        "offset": message.offset(),
        "timestamp": timestamp if timestamp_type else None,
        "stage": failure.stage,
        "error.class": type(failure.error).__name__,
        "error.message": describe_error(failure.error),
        "attempts": failure.attempts,
        "first.failure": failure.first_failure.isoformat(timespec="milliseconds"),
        "last.failure": failure.last_failure.isoformat(timespec="milliseconds"),
        "group": group_id,
    }
    raw = message.headers() or []
    original: Headers = list(raw.items()) if isinstance(raw, dict) else list(raw)
    added: Headers = [
        (DLQ_HEADER_PREFIX + k, str(v).encode()) for k, v in context.items() if v is not None
    ]
    return [*original, *added]


class DeadLetterPublisher:
    """Awaits the broker's ack for every dead letter: the source offset moves only after it."""

    def __init__(
        self, bootstrap_servers: str, topic: str, group_id: str, *, delivery_timeout_ms: int
    ) -> None:
        self._topic = topic
        self._group_id = group_id
        self._producer = AcknowledgedProducer(
            bootstrap_servers,
            client_id="segstream-consumer-dlq",
            delivery_timeout_ms=delivery_timeout_ms,
            error=lambda reason: DeadLetterError(
                f"dead-letter topic did not acknowledge: {reason}"
            ),
        )

    async def send(self, message: Message, failure: Failure) -> None:
        """Return once the broker has the dead letter; raise :class:`DeadLetterError` (fatal:
        the consumer stops before the record's offset) for any failure, whatever its kind."""
        try:
            await self._producer.produce(
                self._topic,
                key=message.key(),
                value=message.value(),
                headers=dead_letter_headers(message, failure, self._group_id),
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
