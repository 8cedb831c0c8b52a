"""The CRM attributes an event can carry, read off the event. Every sink writes these.

A customer's segmentation is a set of named attributes. Each comes from one field of the event
(contract v2): ``None`` there means the event does not carry the attribute, and the customer keeps
the value of the newest event that did. To add an attribute, add one :class:`Attribute` here (and
the field to the contract); the fold, the state and every sink handle it from then on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from schemas.model import InteractionCompleted

JsonValue = Any


@dataclass(frozen=True)
class Attribute:
    name: str
    """The CRM's name for it (the seed's API: ``attributes.{name}``)."""
    read: Callable[[InteractionCompleted], JsonValue | None]
    """The value the event carries, as JSON; ``None`` when it does not carry one."""


def _tags(event: InteractionCompleted) -> list[str] | None:
    return None if event.tags is None else list(event.tags)


ATTRIBUTES: Final = (
    Attribute("last_interaction_summary", lambda event: event.interaction_summary),
    Attribute("sentiment", lambda event: event.sentiment_score),
    Attribute("segmentation_tags", _tags),
)
ATTRIBUTE_NAMES: Final = frozenset(attribute.name for attribute in ATTRIBUTES)


def carried(event: InteractionCompleted) -> dict[str, JsonValue]:
    """Attribute name -> value, for exactly the attributes the event carries."""
    values = {attribute.name: attribute.read(event) for attribute in ATTRIBUTES}
    return {name: value for name, value in values.items() if value is not None}
