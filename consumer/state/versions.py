"""Which event an attribute's value came from, and how two of them are ordered.

"Newest" is the latest completion time, with the event id breaking ties (issue 7's rule): the
order is total and the same on every instance and in every sink, so folding the same events in
any order, any number of times, ends with the same value (a last-writer-wins register per
attribute, as in CRDTs, with the event's own time as the timestamp).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from schemas.model import InteractionCompleted


@dataclass(frozen=True, order=True)
class Version:
    """An event's place in the newest-wins order: ``(completed_at in epoch ms, event id)``.

    Event ids compare by code point (Python's ``str`` order, PostgreSQL's ``COLLATE "C"`` on UTF-8).
    """

    completed_at_ms: int
    event_id: str

    @classmethod
    def of(cls, event: InteractionCompleted) -> Version:
        return cls(epoch_ms(event.completed_at), event.event_id)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_ms(moment: datetime) -> int:
    """Milliseconds since the epoch, exact (no float) for every ``datetime`` the contract allows."""
    delta = moment - _EPOCH
    return delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000


def from_epoch_ms(millis: int) -> datetime:
    """The UTC instant ``millis`` ms after the epoch, exactly."""
    return _EPOCH + timedelta(milliseconds=millis)


@dataclass(frozen=True)
class CustomerVersions(Mapping[str, Version]):
    """For one customer: attribute name -> version of the value the sink holds."""

    by_attribute: Mapping[str, Version]

    def __getitem__(self, name: str) -> Version:
        return self.by_attribute[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.by_attribute)

    def __len__(self) -> int:
        return len(self.by_attribute)

    @property
    def newest(self) -> Version | None:
        return max(self.by_attribute.values(), default=None)

    def with_versions(self, updates: Mapping[str, Version]) -> CustomerVersions:
        return CustomerVersions({**self.by_attribute, **updates})


NO_VERSIONS = CustomerVersions({})
