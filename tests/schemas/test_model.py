"""The event model's reading of a template's leftovers in the attributes: a summary or a tag
that is an unresolved placeholder is the sending flow's "no value", so the event does not carry
it (the customer keeps the newest real value), and a tag list is never turned into a clear."""

from __future__ import annotations

import io
from typing import Any

import fastavro
from hypothesis import given
from hypothesis import strategies as st

from schemas import EventCodec, InteractionCompleted, interaction_completed_schema
from schemas.codec import SINGLE_OBJECT_MAGIC, fingerprint
from support.identifiers import identifiers

# One example of each form schemas.identifiers documents, as a data action renders it.
PLACEHOLDERS = [
    "${input.interactionSummary}",
    "$!{input.tag1}",
    "$input.tag2",
    "$esc.jsonString($!input.summary)",
    "{{summary}}",
    "<summary>",
    "NOT_SET",
]


def event(**fields: Any) -> InteractionCompleted:
    return InteractionCompleted(
        event_id="e-1",
        customer_id="C-1",
        contact_id="k-1",
        channel="voice",
        started_at="2026-11-28T10:15:00Z",
        completed_at="2026-11-28T10:21:40Z",
        **fields,
    )


@given(st.sampled_from(PLACEHOLDERS))
def test_a_placeholder_summary_is_not_carried(placeholder: str) -> None:
    assert event(interaction_summary=placeholder).interaction_summary is None


def test_a_summary_that_merely_mentions_dollars_or_braces_is_carried() -> None:
    summary = "Refund of $40 {approved}; follow-up <in 2 days>"
    assert event(interaction_summary=summary).interaction_summary == summary


@given(
    st.lists(
        st.one_of(
            identifiers(max_size=20).map(lambda tag: (True, tag)),
            st.sampled_from(PLACEHOLDERS).map(lambda tag: (False, tag)),
        ),
        max_size=10,
    )
)
def test_placeholder_tags_are_left_out_and_never_clear_the_tags(
    tags: list[tuple[bool, str]],
) -> None:
    real = [tag for is_real, tag in tags if is_real]
    read = event(tags=[tag for _, tag in tags]).tags

    if not tags:
        assert read == []  # an explicitly empty list still clears
    elif not real:
        assert read is None  # nothing but placeholders: not carried
    else:
        assert read == real


def test_a_record_another_producer_wrote_with_placeholders_is_read_the_same_way() -> None:
    # The contract, not the bridge, holds the rule: records that did not come through the
    # bridge are read alike by the consumer.
    schema = fastavro.parse_schema(interaction_completed_schema())
    record = event(tags=["vip"]).to_avro() | {
        "interaction_summary": "${input.interactionSummary}",
        "tags": ["NOT_SET", "vip"],
    }
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, schema, record)
    data = SINGLE_OBJECT_MAGIC + fingerprint(interaction_completed_schema()) + buffer.getvalue()

    decoded = EventCodec("interactions.completed.v1").decode(data)

    assert decoded.interaction_summary is None
    assert decoded.tags == ["vip"]


def test_a_placeholder_sentiment_or_tag_list_is_not_carried() -> None:
    read = event(sentiment_score="${input.sentimentScore}", tags="$!{input.tags}")
    assert (read.sentiment_score, read.tags) == (None, None)


def test_the_whole_value_forms_are_recognised_with_blanks_around_them() -> None:
    read = event(interaction_summary=" NOT_SET ", tags=[" <tag>", "vip"])
    assert (read.interaction_summary, read.tags) == (None, ["vip"])
