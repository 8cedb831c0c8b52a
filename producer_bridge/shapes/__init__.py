"""The input shapes the bridge accepts, each mapped to one :class:`InteractionCompleted`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from producer_bridge.errors import FieldError, InvalidEventError
from producer_bridge.shapes import platform
from producer_bridge.shapes.architect import ArchitectPayload
from schemas.model import InteractionCompleted
from schemas.topics import SOURCE_ARCHITECT, SOURCE_PLATFORM_EVENT


@dataclass(frozen=True)
class MappedEvent:
    event: InteractionCompleted
    source: str
    """Which shape it came in (the record's ``source`` header)."""
    unresolved: tuple[str, ...] = ()
    """The sender's fields that held an unresolved template placeholder, read as not carried
    (see :class:`InteractionCompleted`): counted and logged when the event is stored."""


class EventMapper:
    """Recognises the shape of a JSON document and maps it to the event, or says why not."""

    def __init__(self, customer_key_fields: Sequence[str]) -> None:
        if not customer_key_fields:
            raise ValueError("at least one customer key field is required")
        self._key_fields = list(customer_key_fields)

    def map(self, document: Any, received_at: datetime) -> MappedEvent:
        """Raises :class:`InvalidEventError` with every offending field."""
        if not isinstance(document, dict):
            raise InvalidEventError(
                [FieldError(field="(body)", reason="an event must be a JSON object")]
            )
        try:
            if platform.is_platform_envelope(document):
                envelope = platform.PlatformEnvelope.model_validate(document)
                return MappedEvent(
                    platform.to_event(envelope, self._key_fields, received_at),
                    SOURCE_PLATFORM_EVENT,
                    platform.unresolved_fields(envelope),
                )
            payload = ArchitectPayload.model_validate(document)
            return MappedEvent(
                payload.to_event(received_at), SOURCE_ARCHITECT, payload.unresolved_fields
            )
        except ValidationError as exc:
            raise InvalidEventError(describe_errors(exc.errors())) from exc


def describe_errors(errors: Sequence[ErrorDetails]) -> list[FieldError]:
    """Pydantic errors as ``{"field", "reason"}`` pairs a sender can act on (no input echoed)."""
    return [
        FieldError(
            field=".".join(str(part) for part in error["loc"]) or "(body)", reason=error["msg"]
        )
        for error in errors
    ]


__all__ = ["EventMapper", "MappedEvent", "describe_errors"]
