"""The event every part of segstream speaks: one completed contact-center interaction."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Annotated, Any, Final

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
)

from schemas.identifiers import (
    ContactId,
    CustomerId,
    EventId,
    ReferenceId,
    unresolved_placeholder,
)

MAX_TAGS = 32
MAX_TAG_LENGTH = 64
# How far in the future of the clock that receives it an interaction's completion time may lie.
# Five minutes is the clock skew Standard Webhooks tolerates for a signature's timestamp. An event
# dated further ahead would win every newest-wins comparison until that time came, freezing the
# customer's attributes: the bridge refuses it (422) and the consumer dead-letters it (checked
# against the record's timestamp).
MAX_CLOCK_SKEW_S: Final = 300

Tag = Annotated[str, Field(min_length=1, max_length=MAX_TAG_LENGTH)]


class Channel(enum.StrEnum):
    VOICE = "voice"
    CALLBACK = "callback"
    CHAT = "chat"
    EMAIL = "email"
    MESSAGE = "message"
    SOCIAL = "social"
    OTHER = "other"


def default_event_id(contact_id: str, started_at: datetime) -> str:
    """The seed's idempotency key, ``{contactId}-{startTime}``, with the time as ISO-8601 UTC.

    The time is rendered to the millisecond with a ``Z`` suffix so the same interaction gives the
    same key whether the sender wrote ``startTime`` as ISO-8601 or as epoch milliseconds.
    """
    instant = started_at.astimezone(UTC)
    text = instant.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if text.endswith(".000Z"):
        text = text[: -len(".000Z")] + "Z"
    return f"{contact_id}-{text}"


def _as_utc_millis(value: datetime) -> datetime:
    """Avro keeps milliseconds; truncating here keeps an event equal to itself after decoding."""
    if value.tzinfo is None:
        raise ValueError("timestamp must carry a time zone (for example a trailing Z)")
    try:
        value = value.astimezone(UTC)
    except OverflowError as exc:  # 0001-01-01T00:00+01:00 is before datetime.min in UTC
        raise ValueError("timestamp out of range (years 1..9999 in UTC)") from exc
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def _parse_instant(value: Any) -> Any:
    """Timestamps arrive as ISO-8601 text or as epoch milliseconds (the platform sends both)."""
    if isinstance(value, bool):
        raise ValueError("timestamp must be ISO-8601 text or epoch milliseconds")
    if isinstance(value, int | float):
        return _from_epoch_millis(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return _from_epoch_millis(int(value))
    return value


def _from_epoch_millis(millis: float) -> datetime:
    # fromtimestamp raises OverflowError/OSError (not ValueError) past year 9999; pydantic turns
    # only ValueError into a validation error, anything else would escape as a crash.
    try:
        return datetime.fromtimestamp(millis / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise ValueError("epoch milliseconds out of range (years 1..9999)") from exc


Instant = Annotated[datetime, BeforeValidator(_parse_instant), AfterValidator(_as_utc_millis)]
"""A point in time given as ISO-8601 (with a zone) or epoch milliseconds, kept in UTC to the ms."""


def is_unresolved(value: Any) -> bool:
    """Is ``value`` text that is an unresolved template placeholder (any form
    :mod:`schemas.identifiers` lists, blanks around it ignored)?"""
    return isinstance(value, str) and unresolved_placeholder(value.strip()) is not None


def not_carried_if_unresolved(value: Any) -> Any:
    """An attribute value that is an unresolved placeholder is not carried (``None``).

    A template renders a reference whose value is null as its own text (see
    :mod:`schemas.identifiers` for the forms and their sources), so ``"${input.summary}"`` is
    the sending flow's way of saying "no summary": the customer keeps the newest real one.
    """
    return None if is_unresolved(value) else value


def tags_or_not_carried(value: Any) -> Any:
    """Tags that hold an unresolved template placeholder are left out of the list; a non-empty
    list with nothing else, or a placeholder in place of the list, is not carried (``None``),
    never a clear: a flow whose tag variables had no value has not asked for the customer's
    tags to be removed."""
    if is_unresolved(value):
        return None
    if not isinstance(value, list) or not any(is_unresolved(tag) for tag in value):
        return value
    kept = [tag for tag in value if not is_unresolved(tag)]
    return kept or None


class InteractionCompleted(BaseModel):
    """One record on ``interactions.completed.v1``; field names are the Avro schema's.

    The seed's camelCase names (``customerId``, ``startTime``, ...) are accepted as aliases so a
    payload in the sender's vocabulary validates directly.

    Contract v2: ``interaction_summary``, ``sentiment_score`` and ``tags`` feed the customer's CRM
    attributes, and ``None`` means the event does not carry that attribute (the customer keeps
    the value of the newest event that did). Only ``tags`` can be carried empty (``[]`` clears).
    An unresolved template placeholder in the summary, the sentiment or a tag is a template's
    rendering of "no value", read as not carried (a tag: left out).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    # Ids that become Kafka keys and HTTP headers: printable, bounded so that every key derived
    # from them fits 255 characters, never a template placeholder (see schemas.identifiers).
    event_id: EventId = Field(validation_alias=AliasChoices("event_id", "eventId"))
    customer_id: CustomerId = Field(validation_alias=AliasChoices("customer_id", "customerId"))
    contact_id: ContactId = Field(validation_alias=AliasChoices("contact_id", "contactId"))
    channel: Channel
    started_at: Instant = Field(
        validation_alias=AliasChoices("started_at", "startedAt", "startTime")
    )
    completed_at: Instant = Field(
        validation_alias=AliasChoices("completed_at", "completedAt", "endTime", "completedTime")
    )
    interaction_summary: Annotated[str | None, BeforeValidator(not_carried_if_unresolved)] = Field(
        default=None,
        max_length=1024,
        validation_alias=AliasChoices("interaction_summary", "interactionSummary"),
    )
    sentiment_score: Annotated[float | None, BeforeValidator(not_carried_if_unresolved)] = Field(
        default=None,
        ge=-1.0,
        le=1.0,
        allow_inf_nan=False,
        validation_alias=AliasChoices("sentiment_score", "sentimentScore"),
    )
    tags: Annotated[list[Tag] | None, BeforeValidator(tags_or_not_carried)] = Field(
        default=None, max_length=MAX_TAGS
    )
    """``None``: the event does not carry tags (the CRM keeps its own); ``[]``: it clears them.
    A tag that is an unresolved template placeholder is left out (:func:`tags_or_not_carried`)."""
    caller_id: str | None = Field(
        default=None, repr=False, validation_alias=AliasChoices("caller_id", "callerId")
    )
    queue_id: ReferenceId | None = Field(
        default=None, validation_alias=AliasChoices("queue_id", "queueId")
    )
    agent_id: ReferenceId | None = Field(
        default=None, validation_alias=AliasChoices("agent_id", "agentId")
    )
    attributes: dict[str, str] = Field(default_factory=dict)

    def to_avro(self) -> dict[str, Any]:
        """The record as fastavro writes it (timestamps stay ``datetime``; fastavro converts)."""
        record = self.model_dump()
        record["channel"] = self.channel.value
        return record
