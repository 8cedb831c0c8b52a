"""The newest-wins rule, one event at a time: what moves forward, and how the rest is counted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from consumer.state import CustomerVersions, Version, decide
from consumer.state.versions import NO_VERSIONS, epoch_ms, from_epoch_ms
from schemas.model import InteractionCompleted

T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def event(event_id: str, minutes: float, **fields: Any) -> InteractionCompleted:
    at = T0 + timedelta(minutes=minutes)
    base: dict[str, Any] = {
        "event_id": event_id,
        "customer_id": "C-1",
        "contact_id": "c",
        "channel": "voice",
        "started_at": at,
        "completed_at": at,
    }
    return InteractionCompleted(**(base | fields))


def test_a_first_event_moves_every_attribute_it_carries_and_nothing_else() -> None:
    first = event("e1", 0, interaction_summary="billing", tags=["vip"])
    decision = decide(first, NO_VERSIONS, None)
    assert decision.outcome == "forward"
    assert decision.forward == {"last_interaction_summary": "billing", "segmentation_tags": ["vip"]}
    assert dict(decision.versions) == {
        "last_interaction_summary": Version.of(first),
        "segmentation_tags": Version.of(first),
    }


def test_an_event_carrying_no_tags_leaves_them_alone_and_empty_tags_clear_them() -> None:
    architect = event("arch", 0, sentiment_score=0.6, tags=["upsell_opportunity"])
    held = decide(architect, NO_VERSIONS, None).versions
    acw = event("acw", 9, interaction_summary="callback-requested")  # tags None, sentiment None
    decision = decide(acw, held, None)
    assert decision.forward == {"last_interaction_summary": "callback-requested"}
    assert decision.versions["segmentation_tags"] == Version.of(architect)
    assert decision.versions["sentiment"] == Version.of(architect)
    cleared = decide(event("flow", 10, tags=[]), decision.versions, None)
    assert cleared.forward == {"segmentation_tags": []}


def test_an_older_event_moves_only_the_attributes_it_is_newest_for() -> None:
    newer = event("b", 10, interaction_summary="later")
    held = decide(newer, NO_VERSIONS, None).versions
    older = event("a", 5, interaction_summary="earlier", tags=["t"])
    decision = decide(older, held, None)
    assert decision.forward == {"segmentation_tags": ["t"]}
    # last_updated is the customer's newest time, not the older event's.
    assert decision.last_updated_ms == epoch_ms(newer.completed_at)


def test_equal_completion_times_are_ordered_by_event_id() -> None:
    low, high = event("evt-a", 0, tags=["a"]), event("evt-b", 0, tags=["b"])
    assert decide(high, decide(low, NO_VERSIONS, None).versions, None).forward == {
        "segmentation_tags": ["b"]
    }
    assert decide(low, decide(high, NO_VERSIONS, None).versions, None).outcome == "stale"


def test_a_redelivered_event_is_a_duplicate_and_a_superseded_one_stale() -> None:
    first = event("e1", 0, tags=["x"])
    held = decide(first, NO_VERSIONS, None).versions
    assert decide(first, held, None).outcome == "duplicate"
    later = decide(event("e2", 1, tags=["y"]), held, None).versions
    assert decide(first, later, None).outcome == "stale"
    assert decide(event("e0", 2), later, None).outcome == "stale"  # carries nothing


def test_the_horizon_decides_for_attributes_the_state_no_longer_knows() -> None:
    horizon = Version(epoch_ms(T0 + timedelta(hours=1)), "forgotten")
    before = event("old", 30, tags=["old"])
    after = event("new", 61, tags=["new"])
    assert decide(before, NO_VERSIONS, horizon).outcome == "expired"
    assert decide(after, NO_VERSIONS, horizon).forward == {"segmentation_tags": ["new"]}
    # A known attribute is compared with its own version, whatever the horizon.
    known = CustomerVersions({"segmentation_tags": Version(epoch_ms(T0), "older")})
    assert decide(before, known, horizon).forward == {"segmentation_tags": ["old"]}


@given(st.integers(min_value=-62_135_596_800_000, max_value=253_402_300_799_999))
def test_epoch_milliseconds_round_trip_exactly(millis: int) -> None:
    assert epoch_ms(from_epoch_ms(millis)) == millis
