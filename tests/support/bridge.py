"""The bridge application served in-process on a real port, producing to the real broker."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer
from confluent_kafka import Message
from pydantic import SecretStr

from producer_bridge.app import create_app
from producer_bridge.metrics import BridgeMetrics
from producer_bridge.publisher import KafkaPublisher, build_publisher
from producer_bridge.settings import BridgeSettings
from sandbox.secrets import new_webhook_secret
from sandbox.send import signed_headers
from schemas.codec import EventCodec
from schemas.model import InteractionCompleted
from support.kafka import read_all

EVENTS = "/v1/interactions/completed"
BATCH = "/v1/interactions/completed:batch"

CALLER_NUMBER = "+3247555012"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def architect(customer: str = "C-1001", **fields: Any) -> dict[str, Any]:
    contact = uuid.uuid4().hex
    return {
        "customerId": customer,
        "contactId": contact,
        "channel": "voice",
        "startTime": "2026-11-28T10:15:00Z",
        "interactionSummary": "resolved-billing",
        "sentimentScore": 0.4,
        "tags": ["churn_risk"],
        "callerId": CALLER_NUMBER,
        "idempotency_key": f"{contact}-2026-11-28T10:15:00Z",
        **fields,
    }


def acw_event(**body: Any) -> dict[str, Any]:
    conversation = str(uuid.uuid4())
    topic = f"v2.detail.events.conversation.{conversation}.acw"
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": topic,
        "source": "aws.partner/example",
        "detail": {
            "topicName": topic,
            "eventBody": {
                "eventTime": 1795860900000,
                "conversationId": conversation,
                "participantId": "agent-participant",
                "mediaType": "MESSAGE",
                "messageType": "FACEBOOK",
                "queueId": "queue-3",
                "userId": "agent-7",
                "wrapupCode": "sale-completed",
                "conversationExternalContactIds": ["ext-555"],
                **body,
            },
        },
    }


def assert_problem(answer: Answer, status: int) -> dict[str, Any]:
    assert answer.status == status, answer.body
    assert answer.content_type == "application/problem+json"
    problem: dict[str, Any] = answer.body
    assert problem["status"] == status
    assert problem["type"].startswith("https://segstream.dev/problems/")
    assert problem["title"]
    assert problem["detail"]
    return problem


@dataclass
class Answer:
    status: int
    headers: Mapping[str, str]
    body: Any
    elapsed_s: float

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "").split(";")[0]


@dataclass
class BridgeUnderTest:
    url: str
    secret: str
    topic: str
    bootstrap: str
    session: aiohttp.ClientSession
    metrics: BridgeMetrics
    settings: BridgeSettings
    publisher: KafkaPublisher
    codec: EventCodec = field(init=False)

    def __post_init__(self) -> None:
        self.codec = EventCodec(self.topic)

    async def post(
        self,
        path: str,
        payload: Any = None,
        *,
        raw: bytes | None = None,
        sign: bool = True,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        body = raw if raw is not None else json.dumps(payload).encode()
        sent = {"Content-Type": "application/json"}
        if sign:
            sent |= signed_headers(self.secret, body.decode("utf-8", errors="replace"))
        sent |= dict(headers or {})
        return await self.request("POST", path, data=body, headers=sent)

    async def request(self, method: str, path: str, **kwargs: Any) -> Answer:
        started = time.monotonic()
        async with self.session.request(method, self.url + path, **kwargs) as response:
            text = await response.text()
            try:
                body: Any = json.loads(text)
            except ValueError:
                body = text
            return Answer(response.status, response.headers, body, time.monotonic() - started)

    def records(self) -> list[Message]:
        return read_all(self.bootstrap, self.topic)

    def events(self) -> list[InteractionCompleted]:
        return [self.codec.decode(record.value() or b"") for record in self.records()]


@asynccontextmanager
async def serve_bridge(
    bootstrap: str, topic: str, **overrides: Any
) -> AsyncIterator[BridgeUnderTest]:
    """A bridge on 127.0.0.1 (free port) for ``topic``; its producer is flushed on exit."""
    secret = new_webhook_secret()
    fields: dict[str, Any] = {
        "kafka_bootstrap_servers": bootstrap,
        "topic": topic,
        "webhook_secrets": SecretStr(secret),
        "delivery_timeout_ms": 3000,
        **overrides,
    }
    settings = BridgeSettings(**fields)
    publisher = build_publisher(settings)
    metrics = BridgeMetrics()
    server = TestServer(create_app(settings, publisher, metrics=metrics), host="127.0.0.1")
    async with server, aiohttp.ClientSession() as session:
        yield BridgeUnderTest(
            str(server.make_url("")).rstrip("/"),
            secret,
            topic,
            bootstrap,
            session,
            metrics,
            settings,
            publisher,
        )
