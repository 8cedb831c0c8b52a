"""deploy/compose.yaml with compose.host-network.yaml: up, healthy, one event through it."""

from __future__ import annotations

import asyncio
import json
import secrets
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from consumer.settings import ConsumerSettings
from sandbox.kafka.broker import free_port
from sandbox.secrets import ensure_compose_secrets
from sandbox.send import send_event
from support.deploy.images import DEPLOY, IMAGE_TEST_TIMEOUT_S
from support.deploy.tools import tool
from support.waiting import eventually_sync

pytestmark = [pytest.mark.deploy, pytest.mark.timeout(IMAGE_TEST_TIMEOUT_S)]

PORTS = (
    "KAFKA_PORT",
    "KAFKA_CONTROLLER_PORT",
    "BRIDGE_PORT",
    "CRM_PORT",
    "CONSUMER_1_METRICS_PORT",
    "CONSUMER_2_METRICS_PORT",
    "CONSUMER_3_METRICS_PORT",
    "PROMETHEUS_PORT",
)
SERVICES = ("kafka", "crm", "bridge", "consumer-1", "consumer-2", "consumer-3", "prometheus")
EVENT = {
    "customerId": "C-COMPOSE-1",
    "contactId": "c-compose-1",
    "channel": "voice",
    "startTime": "2026-11-28T10:15:00Z",
    "interactionSummary": "through-compose",
    "tags": ["compose_stack"],
}


@dataclass
class Stack:
    compose: Any
    project: str
    ports: dict[str, int]
    webhook_secret: str

    def url(self, port: str) -> str:
        return f"http://127.0.0.1:{self.ports[port]}"


def _prometheus_config(ports: dict[str, int], path: Path) -> Path:
    """prometheus.host-network.yml with the targets moved to this run's ports."""
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.host-network.yml").read_text())
    targets = {
        "segstream-bridge": [f"127.0.0.1:{ports['BRIDGE_PORT']}"],
        "segstream-consumer": [
            f"127.0.0.1:{ports[f'CONSUMER_{n}_METRICS_PORT']}" for n in (1, 2, 3)
        ],
    }
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": targets[job["job_name"]]}]
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o644)
    return path


@pytest.fixture(scope="module")
def stack(
    segstream_image: str,
    kafka_image: str,
    prometheus_image: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    """One stack for this module's tests (it takes a minute or two to come up on 2 cores)."""
    from testcontainers.compose import DockerCompose  # noqa: PLC0415 - needs Docker

    tmp_path = tmp_path_factory.mktemp("compose")
    secrets_dir = tmp_path / "secrets"
    files = ensure_compose_secrets(secrets_dir)  # what `segstream-sandbox secrets` writes
    webhook_secret = files["webhook-secret"].read_text().strip()
    project = f"segstream-check-{secrets.token_hex(4)}"
    ports = {name: free_port() for name in PORTS}
    env = {
        "COMPOSE_PROJECT_NAME": project,
        "SEGSTREAM_IMAGE": segstream_image,
        "KAFKA_IMAGE": kafka_image,
        "PROMETHEUS_IMAGE": prometheus_image,
        "SEGSTREAM_SECRETS_DIR": str(secrets_dir),
        "SEGSTREAM_PROMETHEUS_CONFIG": str(_prometheus_config(ports, tmp_path / "prom.yml")),
        **{name: str(port) for name, port in ports.items()},
    }
    env_file = tmp_path / "compose.env"
    env_file.write_text("".join(f"{key}={value}\n" for key, value in env.items()))
    compose = DockerCompose(
        context=DEPLOY,
        compose_file_name=["compose.yaml", "compose.host-network.yaml"],
        env_file=str(env_file),
        wait=True,
    )
    try:
        compose.start()
    except BaseException:
        stdout, stderr = compose.get_logs()
        compose.stop()
        pytest.fail(f"the stack did not come up healthy:\n{stdout[-6000:]}\n{stderr[-3000:]}")
    try:
        yield Stack(compose, project, ports, webhook_secret)
    finally:
        compose.stop()


def test_the_stack_comes_up_healthy_on_loopback_only(stack: Stack, docker_client: Any) -> None:
    containers = {c.Service: c for c in stack.compose.get_containers(include_all=True)}
    for service in SERVICES:
        assert containers[service].State == "running", containers[service]
        assert containers[service].Health == "healthy", containers[service]
    topics = containers["topics"]
    assert topics.State == "exited", topics
    assert topics.ExitCode == 0, topics
    # Host networking: no network of the project, no container on any Docker network.
    project = {"label": f"com.docker.compose.project={stack.project}"}
    assert docker_client.networks.list(filters=project) == []
    for container in docker_client.containers.list(all=True, filters=project):
        assert container.attrs["HostConfig"]["NetworkMode"] == "host", container.name


def test_one_event_goes_through_the_stack(stack: Stack) -> None:
    status, body = asyncio.run(
        send_event(
            stack.url("BRIDGE_PORT") + "/v1/interactions/completed", stack.webhook_secret, EVENT
        )
    )
    assert status == 202, body

    def customer() -> dict[str, Any] | None:
        url = stack.url("CRM_PORT") + "/_sim/customers/C-COMPOSE-1"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
                return dict(json.load(response))
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise

    record = eventually_sync(customer, timeout=90)
    assert record["attributes"]["last_interaction_summary"] == "through-compose"
    assert record["attributes"]["segmentation_tags"] == ["compose_stack"]

    # The stack's Prometheus scrapes the bridge and all three consumers.
    def scraped() -> list[dict[str, Any]] | None:
        url = stack.url("PROMETHEUS_PORT") + "/api/v1/query?query=up"
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
            result = list(json.load(response)["data"]["result"])
        return result if len(result) == 4 and all(r["value"][1] == "1" for r in result) else None

    jobs = sorted(r["metric"]["job"] for r in eventually_sync(scraped, timeout=90))
    assert jobs == ["segstream-bridge"] + ["segstream-consumer"] * 3


@pytest.fixture(scope="module")
def secrets_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("config")
    ensure_compose_secrets(directory / "secrets")
    env_file = directory / "compose.env"
    env_file.write_text(f"SEGSTREAM_SECRETS_DIR={directory / 'secrets'}\n")
    return env_file


def _config(env_file: Path, *files: str) -> dict[str, Any]:
    """``docker compose config`` of ``files``: the model compose would run, fully resolved."""
    from testcontainers.compose import DockerCompose  # noqa: PLC0415 - needs docker compose

    tool("docker")
    compose = DockerCompose(context=DEPLOY, compose_file_name=list(files), env_file=str(env_file))
    return dict(compose.get_config())


def test_the_compose_file_for_users_is_complete_and_on_loopback(secrets_env: Path) -> None:
    """The stack without the override (what users run, Grafana included), as compose reads it."""
    services = _config(secrets_env, "compose.yaml")["services"]
    assert set(services) == {*SERVICES, "topics", "grafana"}
    for name, service in services.items():
        for port in service.get("ports", []):
            assert port["host_ip"] == "127.0.0.1", (name, port)
        if name != "topics":
            assert service["healthcheck"]["test"], name
            assert service["restart"] == "unless-stopped", name
    assert services["topics"]["restart"] == "no"
    completed = {"condition": "service_completed_successfully", "required": True}
    for name in ("bridge", "consumer-1", "consumer-2", "consumer-3"):
        assert services[name]["depends_on"]["topics"] == completed, name
    assert services["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert services["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"
    instance_ids = {services[f"consumer-{n}"]["environment"]["SEGSTREAM_CONSUMER_GROUP_INSTANCE_ID"]
                    for n in (1, 2, 3)}  # fmt: skip
    assert len(instance_ids) == 3
    fields = ConsumerSettings.model_fields
    bound = fields["shutdown_drain_s"].default + fields["close_timeout_s"].default
    for n in (1, 2, 3):  # SIGTERM: drain, commit, close, all before Docker's SIGKILL
        assert float(services[f"consumer-{n}"]["stop_grace_period"].removesuffix("s")) > bound


def test_grafana_is_provisioned_with_the_dashboard_and_prometheus(secrets_env: Path) -> None:
    grafana = _config(secrets_env, "compose.yaml")["services"]["grafana"]
    mounts = {v["target"]: Path(v["source"]) for v in grafana["volumes"] if v["type"] == "bind"}
    provisioning = mounts["/etc/grafana/provisioning"]
    (datasource,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    assert datasource["type"] == "prometheus"
    variable = datasource["url"].removeprefix("$")
    assert grafana["environment"][variable] == "http://prometheus:9090"
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "segstream.yml").read_text())[
        "providers"
    ]
    dashboards = mounts[provider["options"]["path"]]
    dashboard = json.loads((dashboards / "segstream.json").read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert panel["targets"], panel["title"]


def test_the_host_network_override_leaves_nothing_on_a_docker_network(secrets_env: Path) -> None:
    config = _config(secrets_env, "compose.yaml", "compose.host-network.yaml")
    for name, service in config["services"].items():
        assert service["network_mode"] == "host", name
        assert not service.get("ports"), name
    assert not config.get("networks"), config.get("networks")
