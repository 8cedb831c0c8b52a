"""The platform's own conversation events, as its event bridge delivers them.

An envelope ``{"detail-type": <topic>, "detail": {"topicName": <topic>, "eventBody": {...}}}`` for
the topics ``v2.detail.events.conversation.{id}.acw`` (an agent finished after-call work with a
wrap-up code) and ``v2.detail.events.conversation.{id}.customer.end`` (the customer's side ended).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Annotated, Any, Final

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from producer_bridge.errors import FieldError, InvalidEventError
from producer_bridge.shapes.wire import CustomerKeyEntry, WireInstant, not_in_the_future
from schemas.identifiers import (
    CUSTOMER_ID_MAX_LENGTH,
    CustomerId,
    PlatformId,
    ReferenceId,
    identifier_problem,
)
from schemas.model import Channel, InteractionCompleted, is_unresolved

ACW_TOPIC_PATTERN: Final = r"^v2\.detail\.events\.conversation\.[^.]+\.acw$"
CUSTOMER_END_TOPIC_PATTERN: Final = r"^v2\.detail\.events\.conversation\.[^.]+\.customer\.end$"
# fullmatch, not search: "$" alone would also match before a trailing newline in Python, where
# the document's (ECMA) reading of the same pattern does not.
_TOPICS = {
    re.compile(ACW_TOPIC_PATTERN): "acw",
    re.compile(CUSTOMER_END_TOPIC_PATTERN): "customer.end",
}
ShortText = Annotated[str, StringConstraints(max_length=256)]


class ConversationEventKind(enum.StrEnum):
    ACW = "acw"
    CUSTOMER_END = "customer.end"


def _topic_kind(topic: str) -> ConversationEventKind | None:
    for pattern, kind in _TOPICS.items():
        if pattern.fullmatch(topic):
            return ConversationEventKind(kind)
    return None


def _kind(topic: str) -> ConversationEventKind:
    kind = _topic_kind(topic)
    if kind is None:  # pragma: no cover - the Topic type already refused it
        raise ValueError("not a conversation acw/customer.end topic")
    return kind


def _supported_topic(topic: str) -> str:
    if _topic_kind(topic) is None:
        raise ValueError(
            "only v2.detail.events.conversation.{id}.acw and ...customer.end events are accepted"
        )
    return topic


Topic = Annotated[str, StringConstraints(max_length=512), AfterValidator(_supported_topic)]


_CHANNEL_BY_MEDIA_TYPE: Final = {
    "VOICE": Channel.VOICE,
    "CALLBACK": Channel.CALLBACK,
    "CHAT": Channel.CHAT,
    "EMAIL": Channel.EMAIL,
    "MESSAGE": Channel.MESSAGE,
}
# Messages arriving through a social network's channel are "social" to segmentation; SMS,
# WhatsApp, web messaging and the rest stay "message".
_SOCIAL_MESSAGE_TYPES: Final = frozenset({"FACEBOOK", "TWITTER", "INSTAGRAM"})


class ConversationEventBody(BaseModel):
    """The fields the mapping reads; the platform sends more, and adds fields over time."""

    model_config = ConfigDict(extra="allow")

    event_time: WireInstant = Field(alias="eventTime")
    conversation_id: PlatformId = Field(alias="conversationId")
    participant_id: PlatformId = Field(alias="participantId")
    media_type: Annotated[str, StringConstraints(max_length=64)] = Field(alias="mediaType")
    message_type: ShortText | None = Field(default=None, alias="messageType")
    wrapup_code: Annotated[str, StringConstraints(max_length=1024)] | None = Field(
        default=None, alias="wrapupCode"
    )
    disconnect_type: ShortText | None = Field(default=None, alias="disconnectType")
    direction: ShortText | None = Field(default=None, alias="direction")
    queue_id: ReferenceId | None = Field(default=None, alias="queueId")
    user_id: ReferenceId | None = Field(default=None, alias="userId")
    ani: ShortText | None = Field(default=None, alias="ani", repr=False)
    # The default customer key fields, checked like the document says; a key field configured
    # beyond these is read as it comes (see customer_key).
    external_contact_id: CustomerId | None = Field(default=None, alias="externalContactId")
    conversation_external_contact_ids: list[CustomerKeyEntry] | None = Field(
        default=None, alias="conversationExternalContactIds"
    )


class ConversationDetail(BaseModel):
    model_config = ConfigDict(extra="ignore")

    topic_name: Topic = Field(alias="topicName")
    event_body: ConversationEventBody = Field(alias="eventBody")


class PlatformEnvelope(BaseModel):
    model_config = ConfigDict(extra="ignore")

    detail_type: Topic = Field(alias="detail-type")
    detail: ConversationDetail

    @model_validator(mode="after")
    def _one_topic(self) -> PlatformEnvelope:
        if _kind(self.detail_type) != _kind(self.detail.topic_name):
            raise ValueError("detail-type and detail.topicName name different event kinds")
        return self

    @property
    def kind(self) -> ConversationEventKind:
        return _kind(self.detail.topic_name)


def is_platform_envelope(document: Any) -> bool:
    return isinstance(document, dict) and "detail-type" in document


def event_id(conversation_id: str, participant_id: str, kind: ConversationEventKind) -> str:
    """Stable across redeliveries: the platform (and the event bridge) retry with the same
    conversation, participant and topic, so a redelivered event dedupes downstream."""
    return f"{conversation_id}-{participant_id}-{kind.value}"


def channel_of(media_type: str, message_type: str | None) -> Channel:
    media = media_type.upper()
    if media == "MESSAGE" and (message_type or "").upper() in _SOCIAL_MESSAGE_TYPES:
        return Channel.SOCIAL
    return _CHANNEL_BY_MEDIA_TYPE.get(media, Channel.OTHER)


def customer_key(body: Mapping[str, Any], fields: Sequence[str]) -> str:
    """The first usable id among ``fields`` of the event body; a list gives its first non-blank
    string. Never an empty key: no usable id is an :class:`InvalidEventError`, and so is a chosen
    id that breaks the identifier rules (:mod:`schemas.identifiers`), named with its index in a
    list."""
    for name in fields:
        value = body.get(name)
        candidates = enumerate(value) if isinstance(value, list) else [(None, value)]
        for index, candidate in candidates:
            if isinstance(candidate, str) and candidate.strip():
                field = f"detail.eventBody.{name}" + ("" if index is None else f".{index}")
                if len(candidate) > CUSTOMER_ID_MAX_LENGTH:
                    problem: str | None = f"customer key longer than {CUSTOMER_ID_MAX_LENGTH}"
                else:
                    problem = identifier_problem(candidate)
                if problem is not None:
                    raise InvalidEventError([FieldError(field=field, reason=problem)])
                return candidate
    raise InvalidEventError(
        [
            FieldError(
                field=f"detail.eventBody.{fields[0]}",
                reason="no customer key: none of "
                + ", ".join(fields)
                + " holds a non-empty id, and an event is never keyed by an empty id",
            )
        ]
    )


def to_event(
    envelope: PlatformEnvelope, key_fields: Sequence[str], received_at: datetime
) -> InteractionCompleted:
    """Raises :class:`InvalidEventError` for a missing or invalid customer key and for an
    ``eventTime`` in the future."""
    body = envelope.detail.event_body
    not_in_the_future(body.event_time, received_at, "detail.eventBody.eventTime")
    raw_body = {**(body.model_extra or {}), **body.model_dump(by_alias=True)}
    kind = envelope.kind
    attributes = {
        "platform_topic": kind.value,
        "participant_id": body.participant_id,
        "media_type": body.media_type,
    }
    for name, value in (
        ("direction", body.direction),
        ("disconnect_type", body.disconnect_type),
        ("message_type", body.message_type),
    ):
        if value:
            attributes[name] = value
    return InteractionCompleted(
        event_id=event_id(body.conversation_id, body.participant_id, kind),
        customer_id=customer_key(raw_body, key_fields),
        contact_id=body.conversation_id,
        channel=channel_of(body.media_type, body.message_type),
        # The platform's events carry no start time: the event's own time stands for both.
        started_at=body.event_time,
        completed_at=body.event_time,
        interaction_summary=body.wrapup_code if kind is ConversationEventKind.ACW else None,
        # The platform's events know nothing of segmentation tags: not carried, so the
        # customer's tags are left as they are (an Architect flow's tags: [] would clear them).
        tags=None,
        caller_id=_phone_number(body.ani),
        queue_id=body.queue_id,
        agent_id=body.user_id,
        attributes=attributes,
    )


def unresolved_fields(envelope: PlatformEnvelope) -> tuple[str, ...]:
    """The envelope's attribute fields that held an unresolved template placeholder (an event
    bridge rule's input transformer left unfilled), read as not carried by the event model."""
    body = envelope.detail.event_body
    if envelope.kind is ConversationEventKind.ACW and is_unresolved(body.wrapup_code):
        return ("detail.eventBody.wrapupCode",)
    return ()


def _phone_number(ani: str | None) -> str | None:
    """``tel:+3212345678`` → ``+3212345678``; a chat's or email's address is not a caller id."""
    if ani and ani.startswith("tel:") and len(ani) > 4:
        return ani[4:]
    return None
