"""Both input shapes become the same InteractionCompleted, or a 422 naming the sender's fields."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from producer_bridge.errors import InvalidEventError
from producer_bridge.settings import DEFAULT_CUSTOMER_KEY_FIELDS
from producer_bridge.shapes import EventMapper
from schemas.model import MAX_CLOCK_SKEW_S, Channel
from schemas.topics import SOURCE_ARCHITECT, SOURCE_PLATFORM_EVENT

RECEIVED = datetime(2026, 11, 28, 10, 30, tzinfo=UTC)
ARCHITECT = {
    "customerId": "C-1001",
    "contactId": "7d0c",
    "channel": "voice",
    "startTime": "2026-11-28T10:15:00Z",
    "interactionSummary": "resolved-billing",
    "sentimentScore": 0.4,
    "tags": ["churn_risk"],
    "callerId": "+3212345678",
    "someNewFlowVariable": {"ignored": True},
}


def platform_event(kind: str = "acw", **body: Any) -> dict[str, Any]:
    topic = f"v2.detail.events.conversation.conv-1.{kind}"
    event_body = {
        "eventTime": 1795860900000,
        "conversationId": "conv-1",
        "participantId": "part-7",
        "sessionId": "sess-1",
        "mediaType": "VOICE",
        "direction": "INBOUND",
        "ani": "tel:+3212345678",
        "queueId": "queue-1",
        "userId": "agent-9",
        "wrapupCode": "resolved-billing",
        "conversationExternalContactIds": ["ext-42", "ext-43"],
    }
    event_body.update(body)
    return {
        "version": "0",
        "id": "eb-1",
        "detail-type": topic,
        "source": "aws.partner/example",
        "time": "2026-11-28T10:21:40Z",
        "detail": {"topicName": topic, "version": "2", "eventBody": event_body},
    }


def mapper(*fields: str) -> EventMapper:
    return EventMapper(fields or DEFAULT_CUSTOMER_KEY_FIELDS)


def test_the_seeds_architect_payload_maps_field_by_field() -> None:
    mapped = mapper().map(ARCHITECT, RECEIVED)
    event = mapped.event
    assert mapped.source == SOURCE_ARCHITECT
    assert event.event_id == "7d0c-2026-11-28T10:15:00Z"  # the seed's default key
    assert (event.customer_id, event.contact_id, event.channel) == ("C-1001", "7d0c", Channel.VOICE)
    assert event.started_at == datetime(2026, 11, 28, 10, 15, tzinfo=UTC)
    assert event.completed_at == RECEIVED  # no endTime: when the bridge received it
    assert (event.interaction_summary, event.sentiment_score, event.tags) == (
        "resolved-billing",
        0.4,
        ["churn_risk"],
    )
    assert event.caller_id == "+3212345678"


def test_a_sender_supplied_idempotency_key_is_the_event_id() -> None:
    event = mapper().map({**ARCHITECT, "idempotency_key": "k-1"}, RECEIVED).event
    assert event.event_id == "k-1"


def test_an_acw_event_maps_to_the_same_event_keyed_by_the_conversations_external_contact() -> None:
    mapped = mapper().map(platform_event("acw"), RECEIVED)
    event = mapped.event
    assert mapped.source == SOURCE_PLATFORM_EVENT
    assert event.customer_id == "ext-42"
    assert event.event_id == "conv-1-part-7-acw"
    assert event.contact_id == "conv-1"
    assert event.channel is Channel.VOICE
    assert event.interaction_summary == "resolved-billing"
    assert event.completed_at == datetime.fromtimestamp(1795860900, tz=UTC)
    assert (event.queue_id, event.agent_id, event.caller_id) == (
        "queue-1",
        "agent-9",
        "+3212345678",
    )
    # The platform's events know no tags and no sentiment: they do not carry them (contract v2),
    # so the customer's own are left alone.
    assert event.tags is None
    assert event.sentiment_score is None
    assert event.attributes["platform_topic"] == "acw"


def test_a_redelivered_platform_event_gets_the_same_event_id() -> None:
    first = mapper().map(platform_event("acw"), RECEIVED).event
    again = mapper().map(platform_event("acw"), datetime(2030, 1, 1, tzinfo=UTC)).event
    assert first.event_id == again.event_id
    end = mapper().map(platform_event("customer.end", externalContactId="ext-42"), RECEIVED).event
    assert end.event_id != first.event_id


def test_customer_end_uses_external_contact_id_first_and_has_no_wrapup_summary() -> None:
    event = (
        mapper()
        .map(
            platform_event("customer.end", externalContactId="ext-7", disconnectType="peer"),
            RECEIVED,
        )
        .event
    )
    assert event.customer_id == "ext-7"
    assert event.interaction_summary is None
    assert event.attributes["disconnect_type"] == "peer"


def test_the_key_fields_are_configuration_in_order() -> None:
    document = platform_event("acw", externalContactId="ext-7", crmId="crm-1")
    assert mapper("crmId", "externalContactId").map(document, RECEIVED).event.customer_id == "crm-1"
    assert mapper("externalContactId").map(document, RECEIVED).event.customer_id == "ext-7"


@pytest.mark.parametrize(
    "body",
    [
        {"conversationExternalContactIds": None},
        {"conversationExternalContactIds": []},
        {"conversationExternalContactIds": ["", "  "], "externalContactId": None},
    ],
    ids=["absent", "empty-list", "blank-ids"],
)
def test_no_usable_customer_key_is_refused_never_an_empty_key(body: dict[str, Any]) -> None:
    document = platform_event("acw")
    document["detail"]["eventBody"].update(body)
    with pytest.raises(InvalidEventError) as raised:
        mapper().map(document, RECEIVED)
    [error] = raised.value.errors
    assert error["field"] == "detail.eventBody.externalContactId"
    assert "no customer key" in error["reason"]


def test_a_blank_first_list_entry_is_skipped_for_the_next_one() -> None:
    document = platform_event("acw", conversationExternalContactIds=[" ", "ext-9"])
    assert mapper().map(document, RECEIVED).event.customer_id == "ext-9"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"externalContactId": "  "}, "detail.eventBody.externalContactId"),
        (
            {"conversationExternalContactIds": [17]},
            "detail.eventBody.conversationExternalContactIds.0",
        ),
        ({"externalContactId": "x" * 257}, "detail.eventBody.externalContactId"),
    ],
    ids=["blank", "not-text", "too-long"],
)
def test_a_malformed_customer_key_field_is_refused(body: dict[str, Any], field: str) -> None:
    document = platform_event("customer.end", **body)
    with pytest.raises(InvalidEventError) as raised:
        mapper().map(document, RECEIVED)
    assert field in [error["field"] for error in raised.value.errors]


@pytest.mark.parametrize(
    ("media_type", "message_type", "channel"),
    [
        ("VOICE", None, Channel.VOICE),
        ("CALLBACK", None, Channel.CALLBACK),
        ("CHAT", None, Channel.CHAT),
        ("EMAIL", None, Channel.EMAIL),
        ("MESSAGE", "SMS", Channel.MESSAGE),
        ("MESSAGE", "WHATSAPP", Channel.MESSAGE),
        ("MESSAGE", "FACEBOOK", Channel.SOCIAL),
        ("MESSAGE", "TWITTER", Channel.SOCIAL),
        ("COBROWSE", None, Channel.OTHER),
        ("SOMETHING_NEW", None, Channel.OTHER),
        ("voice", None, Channel.VOICE),
    ],
)
def test_media_type_maps_to_channel(
    media_type: str, message_type: str | None, channel: Channel
) -> None:
    document = platform_event("acw", mediaType=media_type, messageType=message_type)
    assert mapper().map(document, RECEIVED).event.channel is channel


def test_a_chat_address_is_not_taken_for_a_caller_id() -> None:
    document = platform_event("acw", mediaType="CHAT", ani="visitor-123")
    assert mapper().map(document, RECEIVED).event.caller_id is None


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (
            lambda d: d.update({"detail-type": "v2.detail.events.conversation.c.user.start"}),
            "detail-type",
        ),
        (
            lambda d: d["detail"].update(
                {"topicName": "v2.detail.events.conversation.c.customer.end"}
            ),
            "(body)",
        ),
        (
            lambda d: d["detail"]["eventBody"].pop("conversationId"),
            "detail.eventBody.conversationId",
        ),
        (
            lambda d: d["detail"]["eventBody"].update({"eventTime": "yesterday"}),
            "detail.eventBody.eventTime",
        ),
        (lambda d: d.pop("detail"), "detail"),
    ],
    ids=["unsupported-topic", "topics-disagree", "no-conversation-id", "bad-time", "no-detail"],
)
def test_a_broken_platform_event_names_the_field(edit: Any, field: str) -> None:
    document = copy.deepcopy(platform_event("acw"))
    edit(document)
    with pytest.raises(InvalidEventError) as raised:
        mapper().map(document, RECEIVED)
    assert field in [error["field"] for error in raised.value.errors]


def test_every_bad_architect_field_is_listed_with_its_reason() -> None:
    document = {
        **ARCHITECT,
        "customerId": "   ",
        "channel": "fax",
        "sentimentScore": 1.5,
        "tags": ["x" * 65],
    }
    del document["startTime"]
    with pytest.raises(InvalidEventError) as raised:
        mapper().map(document, RECEIVED)
    fields = {error["field"]: error["reason"] for error in raised.value.errors}
    assert set(fields) == {"customerId", "channel", "startTime", "sentimentScore", "tags.0"}
    assert fields["customerId"] == "Value error, must not be blank"
    assert "less than or equal to 1" in fields["sentimentScore"]


@pytest.mark.parametrize("document", [[ARCHITECT], "event", 42, None])
def test_a_document_that_is_not_an_object_is_refused(document: Any) -> None:
    with pytest.raises(InvalidEventError, match="must be a JSON object"):
        mapper().map(document, RECEIVED)


def test_the_caller_id_never_appears_in_an_error() -> None:
    document = {**ARCHITECT, "callerId": 12345678, "channel": "fax"}
    with pytest.raises(InvalidEventError) as raised:
        mapper().map(document, RECEIVED)
    assert "12345678" not in str(raised.value)


# --- identifiers at the door (schemas.identifiers), in the sender's field names ---------------

ID_FAULTS = {
    "header-injection": "k-1\r\nX-A: 1",
    "velocity-placeholder": "${input.customerId}",
    "quiet-velocity-in-a-macro": "$esc.jsonString($!input.customerId)",
    "mustache": "{{customerId}}",
    "architect-not-set": "NOT_SET",
    "line-separator": "C\u20281",
    "trailing-space": "C-1 ",
}


def with_body(**body: Any) -> dict[str, Any]:
    return platform_event("customer.end", **body)


@pytest.mark.parametrize("fault", ID_FAULTS.values(), ids=ID_FAULTS.keys())
@pytest.mark.parametrize(
    ("document", "field"),
    [
        (lambda v: {**ARCHITECT, "customerId": v}, "customerId"),
        (lambda v: {**ARCHITECT, "contactId": v}, "contactId"),
        (lambda v: {**ARCHITECT, "idempotency_key": v}, "idempotency_key"),
        (lambda v: with_body(conversationId=v), "detail.eventBody.conversationId"),
        (lambda v: with_body(participantId=v), "detail.eventBody.participantId"),
        (lambda v: with_body(externalContactId=v), "detail.eventBody.externalContactId"),
        (
            lambda v: with_body(conversationExternalContactIds=[v]),
            "detail.eventBody.conversationExternalContactIds.0",
        ),
    ],
    ids=[
        "customerId",
        "contactId",
        "idempotency_key",
        "conversationId",
        "participantId",
        "externalContactId",
        "conversationExternalContactIds",
    ],
)
def test_an_id_that_cannot_be_a_key_or_header_is_refused_naming_the_field(
    document: Any, field: str, fault: str
) -> None:
    with pytest.raises(InvalidEventError) as raised:
        mapper().map(document(fault), RECEIVED)
    [error] = raised.value.errors
    assert error["field"] == field
    assert fault not in error["reason"] or fault == "NOT_SET"


@pytest.mark.parametrize("fault", ["q\n1", "${input.queueId}"])
@pytest.mark.parametrize(
    ("document", "field"),
    [
        (lambda v: {**ARCHITECT, "queueId": v}, "queueId"),
        (lambda v: {**ARCHITECT, "agentId": v}, "agentId"),
        (lambda v: with_body(queueId=v), "detail.eventBody.queueId"),
        (lambda v: with_body(userId=v), "detail.eventBody.userId"),
    ],
    ids=["queueId", "agentId", "platform-queueId", "userId"],
)
def test_queue_and_agent_ids_must_be_printable_and_resolved(
    document: Any, field: str, fault: str
) -> None:
    with pytest.raises(InvalidEventError) as raised:
        mapper().map(document(fault), RECEIVED)
    assert [error["field"] for error in raised.value.errors] == [field]


def test_a_configured_key_field_is_held_to_the_same_rules() -> None:
    document = platform_event("acw", crmId="${input.crmId}")
    with pytest.raises(InvalidEventError) as raised:
        mapper("crmId", "externalContactId").map(document, RECEIVED)
    assert [error["field"] for error in raised.value.errors] == ["detail.eventBody.crmId"]
    listed = platform_event("acw", crmIds=["", "C\r\n1"])
    with pytest.raises(InvalidEventError) as raised:
        mapper("crmIds").map(listed, RECEIVED)
    assert [error["field"] for error in raised.value.errors] == ["detail.eventBody.crmIds.1"]


def test_the_longest_platform_ids_give_an_event_id_within_its_bound() -> None:
    document = with_body(conversationId="c" * 64, participantId="p" * 64)
    assert len(mapper().map(document, RECEIVED).event.event_id) == 142
    with pytest.raises(InvalidEventError):
        mapper().map(with_body(conversationId="c" * 65), RECEIVED)


# --- completion times in the future (schemas.model.MAX_CLOCK_SKEW_S) --------------------------


def test_an_end_time_up_to_five_minutes_ahead_of_the_bridge_is_accepted() -> None:
    ahead = (RECEIVED + timedelta(seconds=MAX_CLOCK_SKEW_S)).isoformat()
    assert mapper().map({**ARCHITECT, "endTime": ahead}, RECEIVED).event.completed_at > RECEIVED


@pytest.mark.parametrize(
    ("document", "field"),
    [
        (lambda t: {**ARCHITECT, "endTime": t}, "endTime"),
        (lambda t: platform_event("acw", eventTime=t), "detail.eventBody.eventTime"),
    ],
    ids=["architect", "platform"],
)
def test_a_completion_time_further_ahead_is_refused_naming_the_field(
    document: Any, field: str
) -> None:
    ahead = RECEIVED + timedelta(seconds=MAX_CLOCK_SKEW_S, milliseconds=1)
    with pytest.raises(InvalidEventError) as raised:
        mapper().map(document(ahead.isoformat()), RECEIVED)
    [error] = raised.value.errors
    assert error["field"] == field
    assert "after the bridge's clock" in error["reason"]


# --- a flow variable with no value --------------------------------------------------------------

LONG_PLACEHOLDER = "$esc.jsonString($!input.segmentationTagsWithAVeryLongVariableName_xx)"


@pytest.mark.parametrize(
    ("fields", "summary", "sentiment", "tags", "unresolved"),
    [
        (  # longer than a tag may be: taken out before the length check, not a 422
            {"tags": [LONG_PLACEHOLDER, "vip"]},
            "resolved-billing",
            0.4,
            ["vip"],
            ("tags",),
        ),
        (  # 32 real tags and one placeholder: the placeholder does not count toward 32
            {"tags": [f"t{n}" for n in range(32)] + ["NOT_SET"]},
            "resolved-billing",
            0.4,
            [f"t{n}" for n in range(32)],
            ("tags",),
        ),
        (  # a number the template could not fill, and the list as a whole
            {"sentimentScore": "${input.sentimentScore}", "tags": "${input.tags}"},
            "resolved-billing",
            None,
            None,
            ("sentimentScore", "tags"),
        ),
        (  # the whole-value forms with blanks around them
            {"interactionSummary": "NOT_SET ", "tags": [" <tag>", "vip"]},
            None,
            0.4,
            ["vip"],
            ("interactionSummary", "tags"),
        ),
        ({"tags": []}, "resolved-billing", 0.4, [], ()),  # an explicit clear stays a clear
    ],
    ids=["long-tag", "33rd-tag", "sentiment-and-list", "padded", "clear"],
)
def test_placeholders_are_not_carried_and_counted_before_the_fields_checks(
    fields: dict[str, Any],
    summary: str | None,
    sentiment: float | None,
    tags: list[str] | None,
    unresolved: tuple[str, ...],
) -> None:
    mapped = EventMapper(DEFAULT_CUSTOMER_KEY_FIELDS).map({**ARCHITECT, **fields}, RECEIVED)

    event = mapped.event
    assert (event.interaction_summary, event.sentiment_score, event.tags) == (
        summary,
        sentiment,
        tags,
    )
    assert mapped.unresolved == unresolved


def test_a_platform_wrapup_code_the_rule_left_unfilled_is_not_carried_and_counted() -> None:
    document = platform_event(wrapupCode="<wrapupCode>")
    mapped = EventMapper(DEFAULT_CUSTOMER_KEY_FIELDS).map(document, RECEIVED)

    assert mapped.event.interaction_summary is None
    assert mapped.unresolved == ("detail.eventBody.wrapupCode",)
