"""Where segmentation updates are written: the CRM over HTTP (and, later, a warehouse)."""

from typing import Protocol

from schemas.model import InteractionCompleted


class Sink(Protocol):
    async def write(self, event: InteractionCompleted) -> None:
        """Apply the event's segmentation update; raise a :class:`consumer.errors.SinkError`."""

    async def close(self) -> None: ...
