"""deploy/k8s: the settings the services are given, and how they reach Kafka.

Every environment variable a container gets is one of its service's settings (a misspelt or
outdated name would otherwise be ignored without a word: the settings classes ignore unknown
names). In the production overlay every service connects over the Strimzi cluster's TLS
listener with SCRAM-SHA-512 as its own KafkaUser, its password and the cluster CA read from
mounted Secret keys; in both renders the services, KEDA and the NetworkPolicies agree on the
bootstrap address.
"""

from __future__ import annotations

import functools

import pytest
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from consumer.dlq.settings import DlqSettings
from consumer.settings import ConsumerSettings
from producer_bridge.settings import BridgeSettings
from support.deploy.manifests import (
    RENDERS,
    Document,
    containers,
    environment,
    of_kind,
    one,
    render,
    shared_config_map,
    shared_settings,
)

pytestmark = pytest.mark.deploy

# Console script (pyproject.toml) -> the settings class it reads.
SERVICES: dict[str, type[BaseSettings]] = {
    "segstream-bridge": BridgeSettings,
    "segstream-consumer": ConsumerSettings,
    "segstream-dlq": DlqSettings,
}
# Strimzi's convention for the internal listener with TLS (its plain one is 9092); KEDA's
# trigger in the overlay uses it too.
TLS_LISTENER_PORT = 9093


def setting_names(settings: type[BaseSettings]) -> frozenset[str]:
    """The environment variables ``settings`` reads, upper case: the prefix plus the field name,
    or a field's own aliases (pydantic-settings adds no prefix to those)."""
    prefix = settings.model_config.get("env_prefix", "")
    names: set[str] = set()
    for name, field in settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names |= {choice for choice in alias.choices if isinstance(choice, str)}
        elif isinstance(alias, str):
            names.add(alias)
        else:
            names.add(f"{prefix}{name}")
    return frozenset(name.upper() for name in names)


def _service(container: Document) -> type[BaseSettings]:
    return SERVICES[container["command"][0]]


def unknown_settings(documents: list[Document]) -> dict[str, list[str]]:
    """Names no service reads, by where they are set: a container's ``env`` must hold its own
    service's settings; a ConfigMap given by ``envFrom`` settings of some service that gets it."""
    unknown: dict[str, list[str]] = {}
    readers: dict[str, set[type[BaseSettings]]] = {}
    for name, container, _ in containers(documents):
        own = setting_names(_service(container))
        for variable in container.get("env", []):
            if variable["name"].upper() not in own:
                unknown.setdefault(name, []).append(variable["name"])
        for source in container.get("envFrom", []):
            readers.setdefault(source["configMapRef"]["name"], set()).add(_service(container))
    for config_map, services in readers.items():
        known = frozenset().union(*(setting_names(s) for s in services))
        keys = one(documents, "ConfigMap", config_map)["data"]
        stray = [key for key in keys if key.upper() not in known]
        if stray:
            unknown[f"ConfigMap/{config_map}"] = stray
    return unknown


@pytest.fixture(scope="module", params=RENDERS)
def rendered(request: pytest.FixtureRequest) -> list[Document]:
    return render(request.param)


def test_every_container_runs_a_service_with_settings(rendered: list[Document]) -> None:
    commands = {name: c["command"][0] for name, c, _ in containers(rendered)}
    assert commands
    assert {name: cmd for name, cmd in commands.items() if cmd not in SERVICES} == {}


def test_every_environment_variable_is_a_setting_of_its_service(
    rendered: list[Document],
) -> None:
    assert unknown_settings(rendered) == {}


def test_a_misspelt_or_misplaced_setting_is_reported() -> None:
    """The check above can fail: a librdkafka-style name the consumer does not read, a bridge
    setting given to the consumer, and a ConfigMap key no reader of it knows."""
    bad = render("overlays/production")
    consumer = one(bad, "Deployment", "segstream-consumer")["spec"]["template"]["spec"]
    consumer["containers"][0]["env"] += [
        {"name": "SEGSTREAM_CONSUMER_KAFKA_SSL_CA_LOCATION", "value": "/ca.crt"},
        {"name": "SEGSTREAM_BRIDGE_KAFKA_SASL_USERNAME", "value": "segstream-bridge"},
    ]
    config = shared_config_map(bad)
    config["data"]["SEGSTREAM_DLQ_RATE_PER_S"] = "10"  # no segstream-dlq pod reads this map
    assert unknown_settings(bad) == {
        "segstream-consumer/consumer": [
            "SEGSTREAM_CONSUMER_KAFKA_SSL_CA_LOCATION",
            "SEGSTREAM_BRIDGE_KAFKA_SASL_USERNAME",
        ],
        f"ConfigMap/{config['metadata']['name']}": ["SEGSTREAM_DLQ_RATE_PER_S"],
    }


def _kafka_egress_ports(documents: list[Document], pod_labels: dict[str, str]) -> set[int]:
    """The ports the pod's NetworkPolicies let it reach the Strimzi broker pods on."""
    ports: set[int] = set()
    for policy in of_kind(documents, "NetworkPolicy"):
        if not policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items():
            continue
        for rule in policy["spec"].get("egress", []):
            peers = [peer.get("podSelector", {}).get("matchLabels", {}) for peer in rule["to"]]
            if any("strimzi.io/cluster" in labels for labels in peers):
                ports |= {port["port"] for port in rule["ports"]}
    return ports


def test_services_keda_and_network_policies_agree_on_the_bootstrap(
    rendered: list[Document],
) -> None:
    bootstrap = shared_settings(rendered)["KAFKA_BOOTSTRAP_SERVERS"]
    scaled = one(rendered, "ScaledObject", "segstream-consumer")
    assert scaled["spec"]["triggers"][0]["metadata"]["bootstrapServers"] == bootstrap
    port = int(bootstrap.rpartition(":")[2])
    for deployment in of_kind(rendered, "Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert _kafka_egress_ports(rendered, labels) == {port}, deployment["metadata"]["name"]


def _secret_key_of(spec: Document, container: Document, path: str) -> tuple[str, str]:
    """(Secret name, key) of the file at ``path`` in the container, through its volume mounts."""
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    for mount in container["volumeMounts"]:
        prefix = mount["mountPath"].rstrip("/") + "/"
        secret = volumes[mount["name"]].get("secret")
        if secret is None or not path.startswith(prefix):
            continue
        relative = path.removeprefix(prefix)
        items = {item["path"]: item["key"] for item in secret.get("items", [])}
        key = items.get(relative) if items else relative
        assert key is not None, f"{path}: not among the items of Secret {secret['secretName']}"
        return secret["secretName"], key
    raise AssertionError(f"{path} is not in a mounted Secret")


def _setting(env: dict[str, str], service: type[BaseSettings], field: str) -> str | None:
    """The value ``env`` gives the setting ``field`` of ``service`` (None: unset)."""
    return env.get(f"{service.model_config.get('env_prefix', '')}{field}".upper())


def test_production_services_connect_as_their_own_kafka_users() -> None:
    production = render("overlays/production")
    users = {u["metadata"]["name"]: u for u in of_kind(production, "KafkaUser")}
    deployments = of_kind(production, "Deployment")
    assert len(deployments) == 2
    for deployment in deployments:
        name = deployment["metadata"]["name"]
        spec = deployment["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        service = _service(container)
        env = environment(production, container)
        setting = functools.partial(_setting, env, service)
        user = users[name]  # the service's own KafkaUser, named as the workload
        cluster = user["metadata"]["labels"]["strimzi.io/cluster"]
        assert user["spec"]["authentication"]["type"] == "scram-sha-512"
        assert setting("kafka_security_protocol") == "SASL_SSL", name
        assert setting("kafka_sasl_mechanism") == "SCRAM-SHA-512", name
        assert setting("kafka_sasl_username") == name
        assert setting("kafka_sasl_password") is None, "the password comes from its file"
        assert setting("kafka_ssl_endpoint_identification") in (None, "true")
        password_file, ca_file = setting("kafka_sasl_password_file"), setting("kafka_ssl_ca_file")
        assert password_file is not None, name
        assert ca_file is not None, name
        # The Secrets Strimzi's User Operator and Cluster Operator write.
        assert _secret_key_of(spec, container, password_file) == (name, "password")
        assert _secret_key_of(spec, container, ca_file) == (f"{cluster}-cluster-ca-cert", "ca.crt")
        bootstrap = setting("kafka_bootstrap_servers") or env["KAFKA_BOOTSTRAP_SERVERS"]
        assert bootstrap == f"{cluster}-kafka-bootstrap:{TLS_LISTENER_PORT}"


def test_keda_authenticates_like_the_services_in_production() -> None:
    production = render("overlays/production")
    auth = one(production, "TriggerAuthentication", "segstream-keda")
    secrets = {ref["parameter"]: ref for ref in auth["spec"]["secretTargetRef"]}
    users = {u["metadata"]["name"]: u for u in of_kind(production, "KafkaUser")}
    cluster = users["segstream-keda"]["metadata"]["labels"]["strimzi.io/cluster"]
    assert (secrets["password"]["name"], secrets["password"]["key"]) == (
        "segstream-keda",
        "password",
    )
    assert (secrets["ca"]["name"], secrets["ca"]["key"]) == (f"{cluster}-cluster-ca-cert", "ca.crt")
    scaled = one(production, "ScaledObject", "segstream-consumer")
    assert scaled["spec"]["triggers"][0]["authenticationRef"]["name"] == "segstream-keda"
