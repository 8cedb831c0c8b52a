"""deploy/k8s: base and production overlay, rendered by kustomize and validated.

Core kinds against Kubernetes' own schemas (kubernetes-validate, strict: an unknown field is an
error), custom resources (KEDA, Strimzi, Prometheus Operator) against their CRDs' schemas with
kubeconform; every rendered document goes through one of the two. Then what the schemas cannot
say: probes and resources everywhere, the drain fits in the grace period, KEDA never scales past
the partitions, secrets are files, and the generated pieces match their sources.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from consumer.settings import ConsumerSettings
from schemas.topics import DEAD_LETTER_TOPIC, DLQ_AUDIT_TOPIC, INTERACTIONS_TOPIC, PARKED_TOPIC
from support.deploy.images import DEPLOY, REPO
from support.deploy.manifests import RENDERS, containers, of_kind, one, shared_settings
from support.deploy.manifests import render as render_kustomization
from support.deploy.tools import crd_schemas, tool

pytestmark = pytest.mark.deploy
kubernetes_validate = pytest.importorskip(
    "kubernetes_validate", reason="pip install -e '.[deploy]'"
)

# The oldest Kubernetes the manifests are written for, and the newest the validator knows.
KUBERNETES_VERSIONS = ["1.29.0", kubernetes_validate.latest_version()]
SCHEMA_LOCATION = "{{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}}.json"
DEFAULT_SHUTDOWN_DRAIN_S = ConsumerSettings.model_fields["shutdown_drain_s"].default
DEFAULT_CLOSE_TIMEOUT_S = ConsumerSettings.model_fields["close_timeout_s"].default


@pytest.fixture(scope="module", params=RENDERS)
def render(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return render_kustomization(request.param)


def _is_custom(doc: dict[str, Any]) -> bool:
    group = doc["apiVersion"].rpartition("/")[0]
    return "." in group and not group.endswith(".k8s.io")


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_core_kinds_validate(render: list[dict[str, Any]], version: str) -> None:
    core = [doc for doc in render if not _is_custom(doc)]
    expected = {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget",
                "NetworkPolicy", "ConfigMap", "ServiceAccount"}  # fmt: skip
    assert expected <= {d["kind"] for d in core}
    errors = {}
    for doc in core:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors[f"{doc['kind']}/{doc['metadata']['name']}"] = str(exc.message)
    assert errors == {}


def test_custom_resources_validate(render: list[dict[str, Any]], tmp_path: Path) -> None:
    custom = [doc for doc in render if _is_custom(doc)]
    assert {"ScaledObject", "KafkaTopic", "KafkaUser", "ServiceMonitor",
            "PrometheusRule"} <= {d["kind"] for d in custom}  # fmt: skip
    manifest = tmp_path / "custom.yaml"
    manifest.write_text(yaml.safe_dump_all(custom))
    result = subprocess.run(
        [tool("kubeconform"), "-strict", "-summary", "-output", "json",
         "-schema-location", f"{crd_schemas()}/{SCHEMA_LOCATION}", str(manifest)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(result.stdout)["summary"]
    assert summary == {"valid": len(custom), "invalid": 0, "errors": 0, "skipped": 0}


def test_a_custom_resource_with_a_misspelt_field_is_refused(tmp_path: Path) -> None:
    """The schemas are strict, so the check above can fail: a typo in a KEDA field is caught."""
    manifest = tmp_path / "bad.yaml"
    bad = yaml.safe_load((DEPLOY / "k8s/base/consumer/scaledobject.yaml").read_text())
    bad["spec"]["maxReplicas"] = bad["spec"].pop("maxReplicaCount")
    manifest.write_text(yaml.safe_dump(bad))
    result = subprocess.run(
        [tool("kubeconform"), "-strict", "-output", "json",
         "-schema-location", f"{crd_schemas()}/{SCHEMA_LOCATION}", str(manifest)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "maxReplicas" in result.stdout


def test_every_container_has_probes_requests_and_limits(render: list[dict[str, Any]]) -> None:
    for name, container, _ in containers(render):
        assert {"livenessProbe", "readinessProbe"} <= container.keys(), name
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= container["resources"][bound].keys(), (name, bound)
        assert container["securityContext"]["readOnlyRootFilesystem"] is True, name


def test_secrets_are_mounted_as_files(render: list[dict[str, Any]]) -> None:
    for deployment in of_kind(render, "Deployment"):
        spec = deployment["spec"]["template"]["spec"]
        secret_volumes = {v["name"] for v in spec["volumes"] if "secret" in v}
        for container in spec["containers"]:
            env = container.get("env", [])
            assert not [e for e in env if "secretKeyRef" in e.get("valueFrom", {})]
            mounts = {
                m["mountPath"] for m in container["volumeMounts"] if m["name"] in secret_volumes
            }
            files = [e["value"] for e in env if e["name"].endswith("_FILE")]
            assert files, deployment["metadata"]["name"]
            for path in files:
                assert any(path.startswith(mount + "/") for mount in mounts), path


def test_the_consumer_drains_within_its_grace_period(render: list[dict[str, Any]]) -> None:
    consumer = one(render, "Deployment", "segstream-consumer")["spec"]["template"]["spec"]
    env = {e["name"]: e for e in consumer["containers"][0]["env"]}
    drain = float(
        env.get("SEGSTREAM_CONSUMER_SHUTDOWN_DRAIN_S", {}).get("value", DEFAULT_SHUTDOWN_DRAIN_S)
    )
    # The drain, then the commit and the close (bounded by the close timeout), before
    # Kubernetes' SIGKILL.
    assert consumer["terminationGracePeriodSeconds"] > drain + DEFAULT_CLOSE_TIMEOUT_S
    instance = env["SEGSTREAM_CONSUMER_GROUP_INSTANCE_ID"]["valueFrom"]["fieldRef"]
    assert instance["fieldPath"] == "metadata.name"


def test_keda_scales_the_group_up_to_the_partition_count(render: list[dict[str, Any]]) -> None:
    scaled = one(render, "ScaledObject", "segstream-consumer")
    (trigger,) = scaled["spec"]["triggers"]
    topics = {t["spec"]["topicName"]: t for t in of_kind(render, "KafkaTopic")}
    assert trigger["type"] == "kafka"
    assert (
        scaled["spec"]["maxReplicaCount"]
        == topics[trigger["metadata"]["topic"]]["spec"]["partitions"]
    )
    assert (
        trigger["metadata"]["consumerGroup"]
        == shared_settings(render)["SEGSTREAM_CONSUMER_GROUP_ID"]
    )
    assert scaled["spec"]["scaleTargetRef"]["name"] == "segstream-consumer"


def test_the_topics_are_the_ones_the_services_use(render: list[dict[str, Any]]) -> None:
    topics = {t["spec"]["topicName"]: t["spec"] for t in of_kind(render, "KafkaTopic")}
    changelog = f"{shared_settings(render)['SEGSTREAM_CONSUMER_GROUP_ID']}-customer-state-changelog"
    assert set(topics) == {
        INTERACTIONS_TOPIC,
        DEAD_LETTER_TOPIC,
        PARKED_TOPIC,
        DLQ_AUDIT_TOPIC,
        changelog,
    }
    assert topics[changelog]["config"]["cleanup.policy"] == "compact"
    assert topics[changelog]["partitions"] == topics[INTERACTIONS_TOPIC]["partitions"]
    for spec in topics.values():
        assert spec["config"]["min.insync.replicas"] < spec["replicas"]


def test_the_prometheus_rule_is_generated_from_the_rules_file() -> None:
    import importlib.util  # noqa: PLC0415

    script = DEPLOY / "prometheus" / "prometheusrule.py"
    loader = importlib.util.spec_from_file_location("prometheusrule", script)
    assert loader is not None
    assert loader.loader is not None
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    expected = module.prometheus_rule((DEPLOY / "prometheus/rules/segstream.rules.yml").read_text())
    actual = (DEPLOY / "k8s/base/monitoring/prometheusrule.yaml").read_text()
    assert actual == expected, "out of date: run `make deploy-generate`"


def test_the_dashboard_config_map_carries_the_dashboard(render: list[dict[str, Any]]) -> None:
    dashboard = one(render, "ConfigMap", "segstream-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    source = (DEPLOY / "grafana/dashboards/segstream.json").read_text()
    assert json.loads(dashboard["data"]["segstream.json"]) == json.loads(source)


def test_every_workload_is_covered_by_a_network_policy_pdb_and_service_monitor(
    render: list[dict[str, Any]],
) -> None:
    for deployment in of_kind(render, "Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        for kind in ("NetworkPolicy", "PodDisruptionBudget"):
            selectors = [
                d["spec"]["podSelector" if kind == "NetworkPolicy" else "selector"]["matchLabels"]
                for d in of_kind(render, kind)
            ]
            assert any(s.items() <= labels.items() for s in selectors), (kind, labels)
        services = [
            s for s in of_kind(render, "Service") if s["spec"]["selector"].items() <= labels.items()
        ]
        monitors = [m["spec"]["selector"]["matchLabels"] for m in of_kind(render, "ServiceMonitor")]
        assert any(
            m.items() <= s["metadata"]["labels"].items() for m in monitors for s in services
        ), deployment["metadata"]["name"]


def test_the_checked_in_files_are_what_the_docs_say() -> None:
    """README's "Deploying" names these paths; a rename must update it."""
    readme = (REPO / "README.md").read_text()
    for path in ("deploy/compose.yaml", "deploy/compose.host-network.yaml", "deploy/k8s/base",
                 "deploy/k8s/overlays/production", "deploy/grafana/dashboards/segstream.json",
                 "deploy/prometheus/rules/segstream.rules.yml", "make deploy-check"):  # fmt: skip
        assert path in readme, path
