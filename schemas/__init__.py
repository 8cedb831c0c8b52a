"""The segstream contract: the event model, its Avro schemas and codec, topic and header names."""

from schemas.codec import EventCodec, fingerprint, interaction_completed_schema
from schemas.errors import (
    EventDecodeError,
    EventEncodeError,
    EventValidationError,
    SchemaError,
    WriterSchemaUnavailableError,
)
from schemas.model import Channel, InteractionCompleted, default_event_id

__all__ = [
    "Channel",
    "EventCodec",
    "EventDecodeError",
    "EventEncodeError",
    "EventValidationError",
    "InteractionCompleted",
    "SchemaError",
    "WriterSchemaUnavailableError",
    "default_event_id",
    "fingerprint",
    "interaction_completed_schema",
]
