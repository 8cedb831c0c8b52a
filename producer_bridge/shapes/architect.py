"""The seed's segmentation payload, as an Architect flow's webhook block sends it."""

from __future__ import annotations

from datetime import datetime

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from schemas.model import Channel, Instant, InteractionCompleted, Tag, default_event_id


class ArchitectPayload(BaseModel):
    # Unknown fields are ignored, not refused: flows add variables over time and a new variable
    # must not stop segmentation updates.
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    customer_id: str = Field(min_length=1, max_length=256, alias="customerId")
    contact_id: str = Field(min_length=1, max_length=256, alias="contactId")
    channel: Channel
    start_time: Instant = Field(validation_alias=AliasChoices("startTime", "startedAt"))
    end_time: Instant | None = Field(
        default=None, validation_alias=AliasChoices("endTime", "completedAt", "completedTime")
    )
    interaction_summary: str | None = Field(
        default=None, max_length=1024, alias="interactionSummary"
    )
    sentiment_score: float | None = Field(
        default=None, ge=-1.0, le=1.0, allow_inf_nan=False, alias="sentimentScore"
    )
    tags: list[Tag] = Field(max_length=32)
    idempotency_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        validation_alias=AliasChoices("idempotency_key", "idempotencyKey"),
    )
    caller_id: str | None = Field(default=None, alias="callerId", repr=False)
    queue_id: str | None = Field(default=None, alias="queueId")
    agent_id: str | None = Field(default=None, alias="agentId")
    attributes: dict[str, str] = Field(default_factory=dict)

    @field_validator("customer_id", "contact_id", "idempotency_key")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        # The event model refuses blank ids too; saying it here names the sender's field.
        if value is not None and not value.strip():
            raise ValueError("must not be blank")
        return value

    def to_event(self, received_at: datetime) -> InteractionCompleted:
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
