"""The container image: built from the checkout, run as the bridge against the session's broker."""

from __future__ import annotations

import asyncio
import json
import tomllib
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.kafka.broker import free_port
from sandbox.secrets import ensure_secret_file, new_webhook_secret
from sandbox.send import send_event
from support.consumers import ConsumerGroup
from support.crm import CrmSimulator
from support.deploy.images import IMAGE_TEST_TIMEOUT_S, REPO
from support.kafka import TopicFactory
from support.waiting import eventually_sync

pytestmark = [pytest.mark.deploy, pytest.mark.kafka, pytest.mark.timeout(IMAGE_TEST_TIMEOUT_S)]

SECRETS_IN_CONTAINER = "/run/secrets/segstream"
EVENT = {
    "customerId": "C-IMAGE-1",
    "contactId": "c-image-1",
    "channel": "chat",
    "startTime": "2026-11-28T10:15:00Z",
    "interactionSummary": "resolved-in-container",
    "sentimentScore": 0.5,
    "tags": ["from_the_image"],
}


class BridgeContainer:
    def __init__(self, container: Any, url: str, secret: str) -> None:
        self.container = container
        self.url = url
        self.secret = secret

    def logs(self) -> str:
        stdout, stderr = self.container.get_logs()
        return (stdout + stderr).decode(errors="replace")


def _ready(bridge: BridgeContainer) -> bool | None:
    wrapped = bridge.container.get_wrapped_container()
    wrapped.reload()
    if wrapped.status == "exited":
        raise AssertionError(f"the bridge container exited:\n{bridge.logs()}")
    try:
        with urllib.request.urlopen(bridge.url + "/readyz", timeout=2) as response:  # noqa: S310
            return response.status == 200 or None
    except OSError:
        return None


@pytest.fixture
def events_topic(topics: TopicFactory) -> str:
    return topics.create("interactions", partitions=3)


@pytest.fixture
def bridge_container(
    segstream_image: str, kafka_bootstrap: str, events_topic: str, tmp_path: Path
) -> Iterator[BridgeContainer]:
    """The image's default command (the bridge) on the host network, bound to 127.0.0.1, its
    signing secret mounted as a file the way a Kubernetes Secret is."""
    from testcontainers.core.container import DockerContainer  # noqa: PLC0415 - needs Docker

    secrets = tmp_path / "secrets"
    secrets.mkdir()
    secret_file = secrets / "webhook-secret"
    secret = ensure_secret_file(secret_file, new_webhook_secret)
    secret_file.chmod(0o644)  # the image's user (uid 10001) reads it through the bind mount
    port = free_port()
    container = DockerContainer(
        segstream_image,
        env={
            "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "SEGSTREAM_BRIDGE_HOST": "127.0.0.1",
            "SEGSTREAM_BRIDGE_PORT": str(port),
            "SEGSTREAM_BRIDGE_TOPIC": events_topic,
            "SEGSTREAM_BRIDGE_WEBHOOK_SECRETS_FILE": f"{SECRETS_IN_CONTAINER}/webhook-secret",
        },
        network_mode="host",
    ).with_volume_mapping(str(secrets), SECRETS_IN_CONTAINER, "ro")
    with container:
        bridge = BridgeContainer(container, f"http://127.0.0.1:{port}", secret)
        eventually_sync(lambda: _ready(bridge), timeout=60)
        yield bridge


@pytest.fixture
def consumers(
    kafka_bootstrap: str, events_topic: str, topics: TopicFactory, group_id: str, run_dir: Path
) -> Iterator[tuple[CrmSimulator, ConsumerGroup]]:
    """The CRM simulator and one consumer of ``events_topic``, as processes."""
    crm = CrmSimulator(run_dir)
    group = ConsumerGroup(
        bootstrap=kafka_bootstrap,
        topic=events_topic,
        dlq=topics.create("dlq", partitions=1),
        group_id=group_id,
        crm=crm,
        run_dir=run_dir,
    )
    try:
        group.start()
        yield crm, group
    finally:
        codes = group.stop_all()
        assert crm.stop() == 0
    assert codes == dict.fromkeys(codes, 0), codes


def test_bridge_in_the_container_takes_a_signed_event_into_the_crm(
    bridge_container: BridgeContainer, consumers: tuple[CrmSimulator, ConsumerGroup]
) -> None:
    crm, _ = consumers
    status, body = _send(bridge_container, EVENT)
    assert status == 202, body
    event_id = json.loads(body)["event_id"]

    customer = eventually_sync(lambda: crm.customer("C-IMAGE-1"), timeout=60)
    assert customer["attributes"] == {
        "last_interaction_summary": "resolved-in-container",
        "sentiment": 0.5,
        "segmentation_tags": ["from_the_image"],
    }
    # One write (a create: the customer is new), keyed by the event id the bridge gave it.
    (write,) = crm.writes("C-IMAGE-1")
    assert write["idempotency_key"].startswith(event_id)


def test_the_image_health_check_reports_the_bridge_healthy(
    bridge_container: BridgeContainer,
) -> None:
    wrapped = bridge_container.container.get_wrapped_container()

    def health() -> str | None:
        wrapped.reload()
        status = wrapped.attrs["State"].get("Health", {}).get("Status")
        return status if status in ("healthy", "unhealthy") else None

    # Docker runs the first check one interval (10 s) after the start.
    assert eventually_sync(health, timeout=60) == "healthy", bridge_container.logs()


def test_the_image_runs_unprivileged_with_every_console_script(segstream_image: str) -> None:
    from testcontainers.core.container import DockerContainer  # noqa: PLC0415 - needs Docker

    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    probes = " && ".join(f"test -x /opt/segstream/bin/{name}" for name in sorted(scripts))
    command = f"id -u && test ! -e /src && {probes} && segstream-sandbox --help >/dev/null"
    command += " && echo ok"
    container = DockerContainer(segstream_image, network_mode="none").with_command(
        ["sh", "-c", command]
    )
    with container:
        wrapped = container.get_wrapped_container()
        result = wrapped.wait(timeout=60)
        output = wrapped.logs().decode()
    assert result["StatusCode"] == 0, output
    assert output.split() == ["10001", "ok"]


def _send(bridge: BridgeContainer, payload: dict[str, Any]) -> tuple[int, str]:
    url = bridge.url + "/v1/interactions/completed"
    return asyncio.run(send_event(url, bridge.secret, payload))
