"""Ids that become Kafka keys and HTTP headers: printable, bounded, never a template's leftover.

Property tests of the rules (valid text from the Unicode categories, faults inserted into it),
the model refusing each kind (so a v1 record already on a topic with such an id is refused at
decode time and dead-lettered at stage validate), and the bounds that keep derived keys short.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from schemas import EventCodec, EventValidationError, InteractionCompleted
from schemas.codec import SingleObjectCodec
from schemas.identifiers import (
    CONTACT_ID_MAX_LENGTH,
    CUSTOMER_ID_MAX_LENGTH,
    EVENT_ID_MAX_LENGTH,
    identifier_problem,
    reference_problem,
)
from schemas.model import default_event_id
from support.identifiers import identifiers, not_printable_chars, references

# What the platform's data actions (Velocity), never-rendered Mustache templates, EventBridge
# input transformers and Architect leave in a field whose variable had no value.
PLACEHOLDERS = [
    "${input.customerId}",
    "$input.customerId",
    "$!{input.customerId}",
    "$!input.customerId",
    "${esc.jsonString($input.customerId)}",
    "$esc.jsonString($!input.customerId)",
    "$esc.url($input.customerId)",
    "$encoding.base64($input.customerId)",
    "\\${input.customerId}",
    "${customerId}",
    "{{customerId}}",
    "{{{customerId}}}",
    "{{ input.customerId }}",
    "<customerId>",
    "<aws.events.event.ingestion-time>",
    "NOT_SET",
]
# The consumer's Idempotency-Keys: the event id, with these suffixes (the longest replay suffix
# it writes is "~r" and a counter with room to spare).
LONGEST_DERIVED_SUFFIX = len("~r999:update")
CRM_IDEMPOTENCY_KEY_LIMIT = 255


def event(**overrides: Any) -> InteractionCompleted:
    fields: dict[str, Any] = {
        "event_id": "7d0c-2026-11-28T10:15:00Z",
        "customer_id": "C-1001",
        "contact_id": "7d0c",
        "channel": "voice",
        "started_at": datetime(2026, 11, 28, 10, 15, tzinfo=UTC),
        "completed_at": datetime(2026, 11, 28, 10, 21, tzinfo=UTC),
        "tags": ["churn_risk"],
    }
    return InteractionCompleted(**{**fields, **overrides})


@given(identifiers(max_size=EVENT_ID_MAX_LENGTH))
def test_printable_text_without_placeholders_is_an_identifier(value: str) -> None:
    assert identifier_problem(value) is None
    assert event(event_id=value, customer_id=value[:256], contact_id=value[:128])


@given(identifiers(max_size=60), st.data())
def test_one_character_that_is_not_printable_anywhere_is_refused(value: str, data: Any) -> None:
    index = data.draw(st.integers(min_value=0, max_value=len(value)))
    char = data.draw(not_printable_chars)
    faulty = value[:index] + char + value[index:]
    problem = identifier_problem(faulty)
    assert problem is not None
    if faulty.strip():
        assert f"U+{ord(char):04X} at index {index}" in problem
    assert reference_problem(faulty) is not None


@pytest.mark.parametrize("value", ["k-1\r\nX-A: 1", "C-1\x00", "C\t1", "C\u20281", "C\u200b1"])
def test_the_issues_header_injection_and_invisible_characters_are_refused(value: str) -> None:
    with pytest.raises(ValidationError, match="not printable"):
        event(event_id=value)
    with pytest.raises(ValidationError, match="not printable"):
        event(customer_id=value)


@pytest.mark.parametrize("placeholder", PLACEHOLDERS)
def test_every_unresolved_placeholder_form_is_refused(placeholder: str) -> None:
    problem = identifier_problem(placeholder)
    assert problem is not None
    assert "placeholder" in problem
    if placeholder != "NOT_SET":  # the kind's own name; any other value is never echoed
        assert placeholder not in problem
    with pytest.raises(ValidationError, match="placeholder"):
        event(customer_id=placeholder)


@given(identifiers(max_size=30), identifiers(max_size=30))
def test_a_velocity_or_mustache_placeholder_inside_an_id_is_refused(
    prefix: str, suffix: str
) -> None:
    for placeholder in ("${input.id}", "$input.id", "{{id}}"):
        assert identifier_problem(prefix + placeholder + suffix) is not None


@pytest.mark.parametrize("value", ["US$100", "john$doe@example.com", "a<b>c", "NOT_SET_X", "{x}"])
def test_text_that_only_resembles_a_placeholder_is_an_identifier(value: str) -> None:
    assert identifier_problem(value) is None


@pytest.mark.parametrize("value", [" C-1", "C-1 ", "   ", ""])
def test_blank_ids_and_spaces_at_either_end_are_refused(value: str) -> None:
    with pytest.raises(ValidationError):
        event(customer_id=value)
    with pytest.raises(ValidationError):
        event(event_id=value)


def test_queue_and_agent_ids_may_be_blank_but_must_be_printable_and_resolved() -> None:
    assert event(queue_id="", agent_id=" ").queue_id == ""
    with pytest.raises(ValidationError, match="not printable"):
        event(queue_id="q\n1")
    with pytest.raises(ValidationError, match="placeholder"):
        event(agent_id="${input.agentId}")
    with pytest.raises(ValidationError):
        event(queue_id="q" * 257)


@given(references(max_size=256))
def test_printable_references_are_accepted(value: str) -> None:
    assert event(queue_id=value, agent_id=value).agent_id == value


@pytest.mark.parametrize(
    ("field", "limit"),
    [
        ("event_id", EVENT_ID_MAX_LENGTH),
        ("customer_id", CUSTOMER_ID_MAX_LENGTH),
        ("contact_id", CONTACT_ID_MAX_LENGTH),
    ],
)
def test_each_id_has_its_bound(field: str, limit: int) -> None:
    assert event(**{field: "x" * limit})
    with pytest.raises(ValidationError, match="at most"):
        event(**{field: "x" * (limit + 1)})


def test_every_key_derived_from_an_event_id_fits_a_crm_idempotency_key() -> None:
    assert EVENT_ID_MAX_LENGTH + LONGEST_DERIVED_SUFFIX <= CRM_IDEMPOTENCY_KEY_LIMIT


@given(
    identifiers(max_size=CONTACT_ID_MAX_LENGTH),
    st.datetimes(
        min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
    ),
)
def test_the_default_event_id_of_any_contact_is_a_valid_event_id(
    contact: str, started: datetime
) -> None:
    default = default_event_id(contact, started)
    assert len(default) <= CONTACT_ID_MAX_LENGTH + len("-2026-11-28T10:15:00.123Z")
    assert event(event_id=default, contact_id=contact).event_id == default


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("customer_id", "${input.customerId}"),
        ("event_id", "k-1\r\nX-A: 1"),
        ("contact_id", "c" * 129),
        ("queue_id", "q\x00"),
    ],
)
def test_a_record_already_on_a_topic_with_such_an_id_is_refused_when_decoded(
    field: str, value: str
) -> None:
    # Written as a v1 producer without these rules could have written it: the record is valid
    # Avro, so only the model's rules stand between it and a CRM write.
    record = {**event().to_avro(), field: value}
    data = SingleObjectCodec().encode(record)
    with pytest.raises(EventValidationError, match=field):
        EventCodec("interactions.completed.v1").decode(data)
