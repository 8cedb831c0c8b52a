"""Every answer of the bridge, against the real broker: what a sender sees, and what reached Kafka.

A 202 means the record is in the topic (read back here); every error is problem+json and leaves
the topic empty.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from pythonjsonlogger.json import JsonFormatter

from sandbox.kafka.broker import LocalKafka, free_port
from sandbox.secrets import new_webhook_secret
from sandbox.send import signed_headers
from schemas.model import Channel
from support.bridge import (
    BATCH,
    CALLER_NUMBER,
    EVENTS,
    TRACEPARENT,
    BridgeUnderTest,
    acw_event,
    architect,
    assert_problem,
    serve_bridge,
)
from support.kafka import TopicFactory
from support.waiting import eventually

pytestmark = pytest.mark.kafka

SHARED_A, SHARED_B = "shared-secret-a-0123456789abcdef", "shared-secret-b-0123456789abcdef"


@pytest.fixture
def topic(topics: TopicFactory) -> str:
    return topics.create("bridge", partitions=3)


@pytest.fixture
async def bridge(kafka_bootstrap: str, topic: str) -> AsyncIterator[BridgeUnderTest]:
    async with serve_bridge(kafka_bootstrap, topic) as served:
        yield served


# --- 202 -------------------------------------------------------------------------------------


async def test_an_architect_event_is_stored_with_its_key_headers_and_value(
    bridge: BridgeUnderTest,
) -> None:
    payload = architect()
    answer = await bridge.post(EVENTS, payload, headers={"traceparent": TRACEPARENT})

    assert answer.status == 202
    assert answer.body["status"] == "accepted"
    assert answer.body["event_id"] == payload["idempotency_key"]
    [record] = bridge.records()
    assert (record.partition(), record.offset()) == (
        answer.body["partition"],
        answer.body["offset"],
    )
    assert record.key() == b"C-1001"
    assert dict(record.headers() or []) == {
        "event-id": payload["idempotency_key"].encode(),
        "content-type": b"application/vnd.segstream.interaction-completed.v1+avro",
        "source": b"architect-webhook",
        "traceparent": TRACEPARENT.encode(),
    }
    event = bridge.codec.decode(record.value() or b"")
    assert (event.customer_id, event.contact_id, event.channel) == (
        "C-1001",
        payload["contactId"],
        Channel.VOICE,
    )
    assert (event.interaction_summary, event.sentiment_score, event.tags) == (
        "resolved-billing",
        0.4,
        ["churn_risk"],
    )
    assert event.caller_id == CALLER_NUMBER


async def test_a_malformed_traceparent_is_not_passed_on(bridge: BridgeUnderTest) -> None:
    answer = await bridge.post(EVENTS, architect(), headers={"traceparent": "not-a-trace"})
    assert answer.status == 202
    [record] = bridge.records()
    assert "traceparent" not in dict(record.headers() or [])


async def test_a_platform_acw_event_is_stored_keyed_by_its_external_contact(
    bridge: BridgeUnderTest,
) -> None:
    payload = acw_event()
    body = payload["detail"]["eventBody"]
    answer = await bridge.post(EVENTS, payload)

    assert answer.status == 202
    assert answer.body["event_id"] == f"{body['conversationId']}-agent-participant-acw"
    [record] = bridge.records()
    assert record.key() == b"ext-555"
    assert dict(record.headers() or [])["source"] == b"platform-event-bridge"
    event = bridge.codec.decode(record.value() or b"")
    assert event.channel is Channel.SOCIAL
    assert event.interaction_summary == "sale-completed"
    assert (event.queue_id, event.agent_id, event.contact_id) == (
        "queue-3",
        "agent-7",
        body["conversationId"],
    )


async def test_a_redelivered_platform_event_is_stored_again_under_the_same_event_id(
    bridge: BridgeUnderTest,
) -> None:
    payload = acw_event()
    first = await bridge.post(EVENTS, payload)
    again = await bridge.post(EVENTS, payload)
    assert (first.status, again.status) == (202, 202)
    assert first.body["event_id"] == again.body["event_id"]
    ids = {dict(r.headers() or [])["event-id"] for r in bridge.records()}
    assert ids == {first.body["event_id"].encode()}


async def test_a_batch_is_stored_whole_in_array_order(bridge: BridgeUnderTest) -> None:
    events = [architect("C-7", attributes={"seq": str(i)}) for i in range(1, 6)]
    batch: list[Any] = [*events, acw_event()]
    answer = await bridge.post(BATCH, batch)

    assert answer.status == 202, answer.body
    assert answer.body["count"] == 6
    assert [e["index"] for e in answer.body["events"]] == list(range(6))
    stored = bridge.events()
    assert len(stored) == 6
    sequence = [e.attributes["seq"] for e in stored if e.customer_id == "C-7"]
    assert sequence == ["1", "2", "3", "4", "5"]


async def test_signatures_with_either_rotated_secret_are_accepted(
    kafka_bootstrap: str, topic: str
) -> None:
    old, new = new_webhook_secret(), new_webhook_secret()
    async with serve_bridge(kafka_bootstrap, topic, webhook_secrets=SecretStr(f"{old} {new}")) as b:
        for secret in (old, new):
            body = json.dumps(architect())
            answer = await b.post(
                EVENTS, raw=body.encode(), sign=False, headers=signed_headers(secret, body)
            )
            assert answer.status == 202
        assert len(b.records()) == 2


async def test_a_shared_secret_header_is_accepted(kafka_bootstrap: str, topic: str) -> None:
    async with serve_bridge(
        kafka_bootstrap,
        topic,
        webhook_secrets=None,
        shared_secrets=SecretStr(f"{SHARED_A} {SHARED_B}"),
    ) as b:
        accepted = await b.post(
            EVENTS, architect(), sign=False, headers={"X-Segstream-Token": SHARED_B}
        )
        refused = await b.post(
            EVENTS, architect(), sign=False, headers={"X-Segstream-Token": SHARED_B[:-1]}
        )
        assert accepted.status == 202
        assert_problem(refused, 401)
        assert len(b.records()) == 1


# --- 400 -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [EVENTS, BATCH])
@pytest.mark.parametrize(
    "body",
    [
        b'{"customerId": "C-1", ',
        b'{"sentimentScore": NaN}',
        b'[{"customerId": "\\ud83d"}]',
        b"[" * 3000 + b"]" * 3000,
        b'{"n": ' + b"1" * 5000 + b"}",
        b"",
        # RFC 8259 §8.1: a sender MUST NOT add a byte order mark; a parser MAY ignore one. The
        # bridge refuses it, like every other byte that is not JSON text.
        b"\xef\xbb\xbf" + json.dumps(architect()).encode(),
    ],
    ids=["truncated", "nan", "lone-surrogate", "deep-nesting", "huge-integer", "empty", "bom"],
)
async def test_malformed_json_gets_400_and_stores_nothing(
    bridge: BridgeUnderTest, path: str, body: bytes
) -> None:
    problem = assert_problem(await bridge.post(path, raw=body), 400)
    assert problem["type"].endswith("/malformed-json")
    assert bridge.records() == []


async def test_a_body_that_is_not_utf8_gets_400(kafka_bootstrap: str, topic: str) -> None:
    async with serve_bridge(
        kafka_bootstrap, topic, webhook_secrets=None, shared_secrets=SecretStr(SHARED_A)
    ) as b:
        body = json.dumps(architect()).encode("utf-16")
        answer = await b.post(EVENTS, raw=body, sign=False, headers={"X-Segstream-Token": SHARED_A})
        assert "not UTF-8" in assert_problem(answer, 400)["detail"]
        assert b.records() == []


# --- 401 -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [EVENTS, BATCH])
@pytest.mark.parametrize(
    "tamper", ["no-headers", "wrong-secret", "expired", "altered-body", "shared-secret-instead"]
)
async def test_a_request_that_does_not_authenticate_gets_401_and_stores_nothing(
    bridge: BridgeUnderTest, path: str, tamper: str
) -> None:
    payload: Any = architect() if path == EVENTS else [architect()]
    body = json.dumps(payload)
    headers = signed_headers(bridge.secret, body)
    if tamper == "no-headers":
        headers = {"Content-Type": "application/json"}
    elif tamper == "wrong-secret":
        headers = signed_headers(new_webhook_secret(), body)
    elif tamper == "expired":
        headers["webhook-timestamp"] = str(int(headers["webhook-timestamp"]) - 301)
    elif tamper == "altered-body":
        body = body.replace("churn_risk", "vip_customer")
    else:
        headers = {"Content-Type": "application/json", "X-Segstream-Token": bridge.secret}
    answer = await bridge.post(path, raw=body.encode(), sign=False, headers=headers)
    assert_problem(answer, 401)
    assert answer.headers["WWW-Authenticate"].startswith("StandardWebhooks")
    assert bridge.secret not in json.dumps(answer.body)
    assert bridge.records() == []


async def test_a_body_signed_over_bytes_that_are_not_utf8_gets_401_saying_why(
    bridge: BridgeUnderTest,
) -> None:
    # Signed as Standard Webhooks signs, over "{id}.{timestamp}." + the raw body, by a sender
    # with the right secret: the body cannot be authenticated as text, and the answer says so
    # rather than "no matching signature" (which would send the sender after its secret).
    body = json.dumps(architect()).encode("utf-16")
    message_id, timestamp = "msg-utf16", str(int(time.time()))
    key = base64.b64decode(bridge.secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256)
    headers = {
        "Content-Type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": "v1," + base64.b64encode(digest.digest()).decode(),
    }
    answer = await bridge.post(EVENTS, raw=body, sign=False, headers=headers)
    assert "not UTF-8" in assert_problem(answer, 401)["detail"]
    assert bridge.records() == []


# --- 404 / 405 -------------------------------------------------------------------------------


async def test_unknown_paths_and_methods_get_problem_json(bridge: BridgeUnderTest) -> None:
    missing = await bridge.request("GET", "/v1/interactions")
    assert_problem(missing, 404)
    wrong_method = await bridge.request("GET", EVENTS)
    assert_problem(wrong_method, 405)
    assert wrong_method.headers["Allow"] == "POST"
    assert_problem(await bridge.request("DELETE", "/healthz"), 405)


# --- 413 -------------------------------------------------------------------------------------


async def test_an_event_over_10_kib_gets_413(bridge: BridgeUnderTest) -> None:
    payload = architect(interactionSummary="x" * (10 * 1024))
    problem = assert_problem(await bridge.post(EVENTS, payload), 413)
    assert problem["limit_bytes"] == 10 * 1024
    assert bridge.records() == []


async def test_a_batch_over_the_event_count_gets_413(bridge: BridgeUnderTest) -> None:
    problem = assert_problem(await bridge.post(BATCH, [architect() for _ in range(101)]), 413)
    assert problem["max_events"] == 100
    assert bridge.records() == []


async def test_one_oversized_event_in_a_batch_gets_413_naming_it(bridge: BridgeUnderTest) -> None:
    batch = [architect(), architect(attributes={"note": "x" * 10_300}), architect()]
    problem = assert_problem(await bridge.post(BATCH, batch), 413)
    assert problem["oversized_indexes"] == [1]
    assert bridge.records() == []


# --- 415 -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml", ""]
)
async def test_a_body_that_is_not_declared_json_gets_415(
    bridge: BridgeUnderTest, content_type: str
) -> None:
    answer = await bridge.post(EVENTS, architect(), headers={"Content-Type": content_type})
    assert_problem(answer, 415)
    assert bridge.records() == []


# --- 422 -------------------------------------------------------------------------------------


async def test_an_invalid_event_gets_422_with_every_field_and_why(bridge: BridgeUnderTest) -> None:
    payload = architect(channel="fax", sentimentScore=-3, tags=["ok", ""])
    del payload["customerId"]
    problem = assert_problem(await bridge.post(EVENTS, payload), 422)
    reasons = {error["field"]: error["reason"] for error in problem["errors"]}
    assert set(reasons) == {"customerId", "channel", "sentimentScore", "tags.1"}
    assert reasons["customerId"] == "Field required"
    assert CALLER_NUMBER not in json.dumps(problem)
    assert bridge.records() == []


async def test_a_platform_event_without_a_customer_key_gets_422(bridge: BridgeUnderTest) -> None:
    problem = assert_problem(
        await bridge.post(EVENTS, acw_event(conversationExternalContactIds=[])), 422
    )
    assert problem["errors"][0]["field"] == "detail.eventBody.externalContactId"
    assert bridge.records() == []


async def test_a_batch_with_invalid_events_gets_422_naming_their_indexes_and_stores_none(
    bridge: BridgeUnderTest,
) -> None:
    batch = [architect(), architect(channel="fax"), architect(), {"customerId": "C-1"}, acw_event()]
    problem = assert_problem(await bridge.post(BATCH, batch), 422)
    assert problem["invalid_indexes"] == [1, 3]
    assert {error["index"] for error in problem["errors"]} == {1, 3}
    assert bridge.records() == []


@pytest.mark.parametrize(("path", "payload"), [(BATCH, {"a": 1}), (BATCH, []), (EVENTS, [1])])
async def test_the_wrong_json_type_gets_422(
    bridge: BridgeUnderTest, path: str, payload: Any
) -> None:
    assert_problem(await bridge.post(path, payload), 422)
    assert bridge.records() == []


# --- 503 -------------------------------------------------------------------------------------


async def test_a_delivery_timeout_gets_503_and_the_senders_retry_gets_202(
    controllable_kafka: LocalKafka,
) -> None:
    topic = TopicFactory(controllable_kafka.bootstrap_servers).create("frozen", partitions=1)
    async with serve_bridge(
        controllable_kafka.bootstrap_servers, topic, delivery_timeout_ms=1500
    ) as b:
        first = architect()
        assert (await b.post(EVENTS, first)).status == 202  # connected, metadata known
        single_event, batch_events = architect(), [architect(), architect()]
        # A frozen broker keeps its connections open and never answers: only the producer's
        # delivery timeout ends the wait.
        controllable_kafka.pause_node(0)
        try:
            single, batch = await asyncio.gather(
                b.post(EVENTS, single_event), b.post(BATCH, batch_events)
            )
            not_ready = await b.request("GET", "/readyz")
        finally:
            controllable_kafka.resume_node(0)
        problem = assert_problem(single, 503)
        assert single.headers["Retry-After"] == "2"
        # The promise: a 503 for a delivery timeout never comes before the delivery timeout (the
        # record may still be on its way), and the request never waits longer than the timeout
        # plus the 2 s margin for a late report (delivery_wait_s), plus a round trip.
        for answer in (single, batch):
            assert 1.5 <= answer.elapsed_s <= b.settings.delivery_wait_s + 1.0, answer.elapsed_s
        assert "not known to be stored" in problem["detail"]
        assert assert_problem(batch, 503)["unacknowledged_indexes"] == [0, 1]
        assert_problem(not_ready, 503)

        # The sender retries the very same events; now they are acknowledged.
        assert (await b.post(EVENTS, single_event)).status == 202
        assert (await b.post(BATCH, batch_events)).status == 202
        stored = [e.event_id for e in b.events()]
        # The records that timed out may have reached the frozen broker's socket before it froze
        # (a 503 means "not known to be stored", never "not stored"): then they are there twice,
        # under one event id, and the consumer's dedupe drops the second.
        wanted = [e["idempotency_key"] for e in (first, single_event, *batch_events)]
        assert set(stored) == set(wanted)
        assert all(1 <= stored.count(event_id) <= 2 for event_id in wanted)


async def test_an_unreachable_broker_gets_503_and_not_ready() -> None:
    nowhere = f"127.0.0.1:{free_port()}"
    async with serve_bridge(nowhere, "interactions", delivery_timeout_ms=1000) as b:
        answer = await b.post(EVENTS, architect())
        assert_problem(answer, 503)
        assert answer.headers["Retry-After"] == "2"
        ready = await b.request("GET", "/readyz")
        assert_problem(ready, 503)
        assert ready.headers["Retry-After"] == "2"


async def test_a_full_local_queue_gets_503_at_once() -> None:
    nowhere = f"127.0.0.1:{free_port()}"
    async with serve_bridge(
        nowhere, "interactions", delivery_timeout_ms=3000, producer_queue_max_messages=1
    ) as b:
        waiting = asyncio.create_task(b.post(EVENTS, architect()))

        async def slot_taken() -> bool:
            return b.publisher.queued() == 1

        await eventually(slot_taken, timeout=5)
        refused = await b.post(EVENTS, architect())
        problem = assert_problem(refused, 503)
        assert "queue is full" in problem["detail"]
        assert refused.elapsed_s < 1.0
        assert_problem(await waiting, 503)


# --- probes, metrics, document, logs ----------------------------------------------------------


async def test_readiness_needs_the_topic(kafka_bootstrap: str, bridge: BridgeUnderTest) -> None:
    ready = await bridge.request("GET", "/readyz")
    assert (ready.status, ready.body) == (200, {"status": "ready", "topic": bridge.topic})
    assert (await bridge.request("GET", "/healthz")).body == {"status": "ok"}
    async with serve_bridge(kafka_bootstrap, f"missing-{uuid.uuid4().hex}") as b:
        assert_problem(await b.request("GET", "/readyz"), 503)


async def test_metrics_count_requests_by_route_and_status_and_time_produces(
    bridge: BridgeUnderTest,
) -> None:
    await bridge.post(EVENTS, architect(customer="C-SECRET-42"))
    await bridge.post(EVENTS, architect(), sign=False)
    await bridge.post(BATCH, [architect(channel="fax")])
    page = (await bridge.request("GET", "/metrics")).body

    def sample(name: str) -> float:
        [line] = [line for line in page.splitlines() if line.startswith(name + " ")]
        return float(line.split()[-1])

    events = 'route="/v1/interactions/completed"'
    batch = 'route="/v1/interactions/completed:batch"'
    assert sample(f'segstream_bridge_requests_total{{{events},status="202"}}') == 1
    assert sample(f'segstream_bridge_requests_total{{{events},status="401"}}') == 1
    assert sample(f'segstream_bridge_requests_total{{{batch},status="422"}}') == 1
    assert sample("segstream_bridge_produce_latency_seconds_count") == 1
    assert sample(f"segstream_bridge_request_bytes_total{{{events}}}") > 100
    assert sample("segstream_bridge_in_flight_requests") == 1  # this /metrics request
    assert (
        sample('segstream_bridge_events_total{outcome="accepted",source="architect-webhook"}') == 1
    )
    assert "C-SECRET-42" not in page


async def test_the_served_openapi_document_is_the_checked_in_file(bridge: BridgeUnderTest) -> None:
    served = await bridge.request("GET", "/openapi.json")
    checked_in = Path(__file__).parents[2] / "producer_bridge" / "openapi.json"
    assert served.status == 200
    assert served.body == json.loads(checked_in.read_text())


async def test_logs_name_event_topic_partition_offset_and_never_a_secret_or_caller_number(
    bridge: BridgeUnderTest, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    accepted = await bridge.post(EVENTS, architect())
    await bridge.post(EVENTS, architect(channel="fax"))
    await bridge.post(EVENTS, architect(), headers={"X-Segstream-Token": bridge.secret}, sign=False)
    formatter = JsonFormatter()
    lines = [formatter.format(record) for record in caplog.records]
    [accepted_line] = [json.loads(line) for line in lines if '"event accepted"' in line]
    assert accepted_line["event_id"] == accepted.body["event_id"]
    assert accepted_line["topic"] == bridge.topic
    assert (accepted_line["partition"], accepted_line["offset"]) == (
        accepted.body["partition"],
        accepted.body["offset"],
    )
    everything = "\n".join(lines)
    assert CALLER_NUMBER not in everything
    assert bridge.secret not in everything
    assert bridge.secret.removeprefix("whsec_") not in everything


async def test_at_info_an_accepted_event_writes_no_log_line(
    bridge: BridgeUnderTest, caplog: pytest.LogCaptureFixture
) -> None:
    await bridge.post(EVENTS, architect())  # connected, metadata known
    caplog.clear()
    caplog.set_level(logging.INFO)
    answers = [await bridge.post(EVENTS, architect()) for _ in range(20)]
    answers.append(await bridge.post(BATCH, [architect() for _ in range(20)]))
    assert {answer.status for answer in answers} == {202}
    assert [r.getMessage() for r in caplog.records if r.name == "producer_bridge.intake"] == []
