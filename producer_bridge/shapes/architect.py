"""The seed's segmentation payload, as an Architect flow's webhook block sends it."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from producer_bridge.shapes.wire import WireInstant, WireNumber, not_in_the_future
from schemas.identifiers import ContactId, CustomerId, EventId, ReferenceId
from schemas.model import Channel, InteractionCompleted, Tag, default_event_id


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

    def unresolved_fields(self, event: InteractionCompleted) -> tuple[str, ...]:
        """The payload's fields (its names) that held an unresolved template placeholder, which
        the event model read as not carried (``interactionSummary``) or left out (a tag)."""
        fields = []
        if self.interaction_summary is not None and event.interaction_summary is None:
            fields.append("interactionSummary")
        if len(self.tags) != len(event.tags or ()):
            fields.append("tags")
        return tuple(fields)

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
            tags=self.tags,
            caller_id=self.caller_id,
            queue_id=self.queue_id,
            agent_id=self.agent_id,
            attributes=self.attributes,
        )
