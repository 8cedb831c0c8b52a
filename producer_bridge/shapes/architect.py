"""The seed's segmentation payload, as an Architect flow's webhook block sends it."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    model_validator,
)

from producer_bridge.shapes.wire import WireInstant, WireNumber, not_in_the_future
from schemas.identifiers import ContactId, CustomerId, EventId, ReferenceId
from schemas.model import (
    Channel,
    InteractionCompleted,
    Tag,
    default_event_id,
    is_unresolved,
    tags_or_not_carried,
)


class ArchitectPayload(BaseModel):
    # Unknown fields are ignored, not refused: flows add variables over time and a new variable
    # must not stop segmentation updates. Each field has one name, the one the document gives.
    model_config = ConfigDict(extra="ignore")

    customer_id: CustomerId = Field(alias="customerId")
    contact_id: ContactId = Field(alias="contactId")
    channel: Channel
    start_time: WireInstant = Field(alias="startTime")
    end_time: WireInstant | None = Field(default=None, alias="endTime")
    interaction_summary: str | None = Field(
        default=None, max_length=1024, alias="interactionSummary"
    )
    sentiment_score: WireNumber | None = Field(
        default=None, ge=-1.0, le=1.0, alias="sentimentScore"
    )
    tags: list[Tag] = Field(max_length=32)
    idempotency_key: EventId | None = None
    caller_id: str | None = Field(default=None, alias="callerId", repr=False)
    queue_id: ReferenceId | None = Field(default=None, alias="queueId")
    agent_id: ReferenceId | None = Field(default=None, alias="agentId")
    attributes: dict[str, str] = Field(default_factory=dict)

    # The sender's fields that held an unresolved template placeholder (read as not carried),
    # and whether the tags are carried at all after leaving such tags out.
    _unresolved: tuple[str, ...] = PrivateAttr(default=())
    _tags_carried: bool = PrivateAttr(default=True)

    @model_validator(mode="wrap")
    @classmethod
    def _without_unresolved(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        """Placeholders are taken out before the fields' own checks: a flow variable with no
        value is not a value, so it can neither be too long nor count toward 32 tags
        (the rule and its sources: :func:`schemas.model.not_carried_if_unresolved`)."""
        if not isinstance(data, dict):
            return handler(data)
        cleaned, unresolved = dict(data), []
        for name in ("interactionSummary", "sentimentScore"):
            if is_unresolved(cleaned.get(name)):
                cleaned[name] = None
                unresolved.append(name)
        tags = cleaned.get("tags")
        kept = tags_or_not_carried(tags)
        if kept is not tags:
            cleaned["tags"] = kept or []
            unresolved.append("tags")
        payload = handler(cleaned)
        payload._unresolved = tuple(unresolved)
        payload._tags_carried = kept is not None
        return payload

    @property
    def unresolved_fields(self) -> tuple[str, ...]:
        """The payload's fields (its names) that held an unresolved template placeholder."""
        return self._unresolved

    def to_event(self, received_at: datetime) -> InteractionCompleted:
        """Raises :class:`InvalidEventError` for an ``endTime`` in the future."""
        if self.end_time is not None:
            not_in_the_future(self.end_time, received_at, "endTime")
        return InteractionCompleted(
            event_id=self.idempotency_key or default_event_id(self.contact_id, self.start_time),
            customer_id=self.customer_id,
            contact_id=self.contact_id,
            channel=self.channel,
            started_at=self.start_time,
            completed_at=self.end_time or received_at,
            interaction_summary=self.interaction_summary,
            sentiment_score=self.sentiment_score,
            tags=self.tags if self._tags_carried else None,
            caller_id=self.caller_id,
            queue_id=self.queue_id,
            agent_id=self.agent_id,
            attributes=self.attributes,
        )
