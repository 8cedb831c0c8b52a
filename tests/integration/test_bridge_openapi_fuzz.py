"""schemathesis against the live bridge: generated requests, every answer as the document says.

Each generated request is signed (Standard Webhooks, over the exact bytes sent) so the fuzzing
reaches parsing, validation and the broker instead of stopping at 401; schemathesis's own
``ignored_auth`` probes still send unsigned copies and expect 401.
"""

from __future__ import annotations

import os
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from standardwebhooks.webhooks import Webhook

from sandbox.kafka.broker import free_port
from sandbox.secrets import ensure_secret_file, new_webhook_secret
from support.kafka import TopicFactory, read_all
from support.services import ServiceProcess

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


class StandardWebhooksSigner(requests.auth.AuthBase):
    """Signs the prepared request's final body bytes, the way a real sender does."""

    def __init__(self, secret: str) -> None:
        self._webhook = Webhook(secret)

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = request.body or b""
        raw = body.encode() if isinstance(body, str) else body
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return request  # not text, so not signable: the bridge must answer 401
        now = datetime.now(UTC)
        message_id = f"msg_{uuid.uuid4().hex}"
        request.headers["webhook-id"] = message_id
        request.headers["webhook-timestamp"] = str(int(now.timestamp()))
        request.headers["webhook-signature"] = self._webhook.sign(message_id, now, text)
        return request


@dataclass
class LiveBridge:
    url: str
    secret: str
    topic: str
    bootstrap: str


@pytest.fixture
def live_bridge(kafka_bootstrap: str, run_dir: Path) -> Iterator[LiveBridge]:
    topic = TopicFactory(kafka_bootstrap).create("fuzz", partitions=3)
    secret_file = run_dir / "webhook-secret"
    secret = ensure_secret_file(secret_file, new_webhook_secret)
    port = free_port()
    bridge = ServiceProcess(
        "bridge",
        ["producer_bridge"],
        {
            "SEGSTREAM_BRIDGE_PORT": str(port),
            "SEGSTREAM_BRIDGE_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "SEGSTREAM_BRIDGE_TOPIC": topic,
            "SEGSTREAM_BRIDGE_WEBHOOK_SECRETS_FILE": str(secret_file),
            "SEGSTREAM_BRIDGE_LOG_LEVEL": "WARNING",
        },
        run_dir,
    )
    try:
        bridge.wait_http(f"http://127.0.0.1:{port}/readyz")
        yield LiveBridge(f"http://127.0.0.1:{port}", secret, topic, kafka_bootstrap)
    finally:
        assert bridge.stop() == 0


def metric_samples(url: str, name: str) -> dict[str, int]:
    """Samples of one counter of the bridge, keyed by their label text."""
    with urllib.request.urlopen(url + "/metrics", timeout=5) as response:  # noqa: S310
        page = response.read().decode()
    return {
        line[len(name) : line.rindex(" ")]: int(float(line.rsplit(" ", 1)[1]))
        for line in page.splitlines()
        if line.startswith(name + "{")
    }


def test_every_generated_request_is_answered_as_the_document_says(live_bridge: LiveBridge) -> None:
    schema = schemathesis.openapi.from_url(live_bridge.url + "/openapi.json")
    checks = schema.config.checks
    # Schema-valid data must be stored (2xx); the only exception is 413: the document states the
    # byte limits (10 KiB an event, the batch body) in prose, JSON Schema cannot express them.
    checks.positive_data_acceptance.expected_statuses = ["2xx", "413"]
    checks.negative_data_rejection.expected_statuses = ["400", "401", "405", "413", "415", "422"]
    signer = StandardWebhooksSigner(live_bridge.secret)
    cases = st.one_of(
        schema.as_strategy(GenerationMode.POSITIVE), schema.as_strategy(GenerationMode.NEGATIVE)
    )

    @settings(
        max_examples=int(os.environ.get("SEGSTREAM_FUZZ_EXAMPLES", "400")),
        deadline=None,
        database=None,
        phases=[Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases)
    def answered_as_documented(case: schemathesis.Case) -> None:
        case.call_and_validate(base_url=live_bridge.url, auth=signer, timeout=20)

    answered_as_documented()

    answers = metric_samples(live_bridge.url, "segstream_bridge_requests_total")
    assert not [labels for labels in answers if 'status="5' in labels], answers
    # The fuzzing got past authentication: into parsing and validation, and to the broker.
    for route in ("/v1/interactions/completed", "/v1/interactions/completed:batch"):
        by_status = {
            labels.split('status="')[1][:3]: count
            for labels, count in answers.items()
            if f'route="{route}"' in labels
        }
        assert by_status.get("202", 0) > 0, answers
        assert by_status.get("422", 0) > 0, answers
        assert by_status.get("401", 0) > 0, answers
    # Every event answered 202 is in the topic.
    accepted = metric_samples(live_bridge.url, "segstream_bridge_events_total")
    accepted_events = sum(n for labels, n in accepted.items() if 'outcome="accepted"' in labels)
    assert len(read_all(live_bridge.bootstrap, live_bridge.topic)) == accepted_events
