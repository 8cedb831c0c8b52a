"""The newest-wins rule: which of an event's attributes move the customer forward.

For each attribute the event carries, it moves forward when its :class:`Version` is newer than the
version of the value the sink holds. An attribute the state has no version for is compared with the
partition's *horizon*: the newest version the state has forgotten (evicted after its retention), or
nothing when it never forgot anything. Below the horizon the state cannot tell whether a newer value
was applied and forgotten, so the attribute does not move (Kafka Streams drops records older than a
versioned store's history retention for the same reason).

What the sink is then asked to write, and how the outcome is counted:

* ``forward``: at least one attribute moves; the sink writes exactly those.
* ``duplicate``: every carried attribute already holds this very event's value (a redelivery).
* ``expired``: nothing moves, and some attribute was held back only by the horizon.
* ``stale``: nothing moves otherwise (every attribute holds a newer value, or none is carried).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from consumer.state.attributes import JsonValue, carried
from consumer.state.versions import CustomerVersions, Version
from schemas.model import InteractionCompleted

Outcome = Literal["forward", "duplicate", "stale", "expired"]


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    forward: Mapping[str, JsonValue]
    """Attribute name -> value, for the attributes that move forward (empty unless ``forward``)."""
    versions: CustomerVersions
    """The customer's versions once the sink has written ``forward``."""
    version: Version
    """The event's own version."""

    @property
    def last_updated_ms(self) -> int:
        """The customer's newest version time after the write: what ``last_updated`` says, so
        it never moves backwards when an older event moves one attribute forward."""
        newest = self.versions.newest
        return self.version.completed_at_ms if newest is None else newest.completed_at_ms


def decide(
    event: InteractionCompleted, held: CustomerVersions, horizon: Version | None
) -> Decision:
    """Decide what ``event`` changes, given the versions the sink holds for its customer."""
    version = Version.of(event)
    values = carried(event)
    forward: dict[str, JsonValue] = {}
    behind_horizon = False
    for name, value in values.items():
        current = held.get(name)
        if current is not None:
            moves = version > current
        elif horizon is not None:
            moves = version > horizon
            behind_horizon = not moves
        else:
            moves = True
        if moves:
            forward[name] = value
    if forward:
        updated = held.with_versions(dict.fromkeys(forward, version))
        return Decision("forward", forward, updated, version)
    outcome: Outcome
    if values and all(held.get(name) == version for name in values):
        outcome = "duplicate"
    elif behind_horizon:
        outcome = "expired"
    else:
        outcome = "stale"
    return Decision(outcome, {}, held, version)
