"""The state of the partitions an instance owns: durable before the offset moves, restored on
assignment, forgotten in the right order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from consumer.state import CustomerStates, CustomerVersions, Version
from consumer.state.store import META_KEY, decode_meta, decode_versions
from schemas.model import InteractionCompleted
from support.pipeline import MemoryChangelog

DAY_MS = 86_400_000
T0 = datetime(2026, 11, 28, tzinfo=UTC)


def event(customer: str, event_id: str, day: int) -> InteractionCompleted:
    at = T0 + timedelta(days=day)
    return InteractionCompleted(
        event_id=event_id,
        customer_id=customer,
        contact_id="c",
        channel="voice",
        started_at=at,
        completed_at=at,
        tags=[event_id],
    )


def ms(day: int) -> int:
    return int((T0 + timedelta(days=day)).timestamp() * 1000)


async def apply(states: CustomerStates, item: InteractionCompleted, at_ms: int) -> None:
    decision = states.decide(0, item, at_ms)
    assert decision.outcome == "forward"
    await states.applied(0, item.customer_id, decision.versions)


async def test_every_applied_change_is_in_the_changelog_and_a_restore_sees_it() -> None:
    changelog = MemoryChangelog()
    states = CustomerStates(changelog, retention_ms=7 * DAY_MS, max_customers_per_partition=100)
    await states.restore(0)
    await apply(states, event("C-1", "e1", 0), ms(0))
    [(key, value)] = changelog.logs[0]
    assert key == b"C-1"
    assert value is not None
    assert decode_versions(value)[0] == CustomerVersions(
        {"segmentation_tags": Version(ms(0), "e1")}
    )

    again = CustomerStates(changelog, retention_ms=7 * DAY_MS, max_customers_per_partition=100)
    await again.restore(0)
    assert again.decide(0, event("C-1", "e1", 0), ms(1)).outcome == "duplicate"
    assert again.decide(0, event("C-1", "e0", -1), ms(1)).outcome == "stale"


async def test_forgetting_writes_the_horizon_before_the_tombstones() -> None:
    changelog = MemoryChangelog()
    states = CustomerStates(changelog, retention_ms=DAY_MS, max_customers_per_partition=100)
    await states.restore(0)
    await apply(states, event("C-old", "old", 0), ms(0))
    await apply(states, event("C-new", "new", 2), ms(2))  # stream time moved two days on
    log = changelog.logs[0]
    assert [key for key, _ in log] == [b"C-old", b"C-new", META_KEY, b"C-old"]
    assert decode_meta(log[2][1] or b"") == Version(ms(0), "old")
    assert log[3][1] is None  # the tombstone

    restored = CustomerStates(changelog, retention_ms=DAY_MS, max_customers_per_partition=100)
    await restored.restore(0)
    assert restored.customers() == 1
    # An event for the forgotten customer older than what was forgotten cannot be ordered.
    assert restored.decide(0, event("C-old", "older", -1), ms(2)).outcome == "expired"
    assert restored.decide(0, event("C-old", "newer", 1), ms(2)).outcome == "forward"


async def test_a_change_for_a_partition_revoked_meanwhile_is_not_written() -> None:
    changelog = MemoryChangelog()
    states = CustomerStates(changelog, retention_ms=DAY_MS, max_customers_per_partition=100)
    await states.restore(0)
    decision = states.decide(0, event("C-1", "e1", 0), ms(0))
    states.drop(0)  # revoked while the sink was writing
    await states.applied(0, "C-1", decision.versions)
    assert changelog.logs[0] == []
