"""An event as a Kafka record: key, Avro value and the contract's headers."""

from __future__ import annotations

import re
from typing import Final

from producer_bridge.publisher import OutgoingRecord
from producer_bridge.shapes import MappedEvent
from schemas.codec import EventCodec
from schemas.topics import HEADER_CONTENT_TYPE, HEADER_EVENT_ID, HEADER_SOURCE, HEADER_TRACEPARENT

# W3C Trace Context version 00; anything else is dropped rather than passed on unchecked.
_TRACEPARENT: Final = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")


def valid_traceparent(value: str | None) -> str | None:
    text = (value or "").strip().lower()
    return text if _TRACEPARENT.match(text) else None


class RecordBuilder:
    def __init__(self, codec: EventCodec) -> None:
        self._codec = codec
        self._content_type = codec.content_type.encode()

    def build(self, mapped: MappedEvent, traceparent: str | None) -> OutgoingRecord:
        """Raises :class:`schemas.errors.EventEncodeError` (registry down or refusing)."""
        event = mapped.event
        headers = [
            (HEADER_EVENT_ID, event.event_id.encode()),
            (HEADER_CONTENT_TYPE, self._content_type),
            (HEADER_SOURCE, mapped.source.encode()),
        ]
        if traceparent is not None:
            headers.append((HEADER_TRACEPARENT, traceparent.encode()))
        return OutgoingRecord(event.customer_id.encode(), self._codec.encode(event), headers)
