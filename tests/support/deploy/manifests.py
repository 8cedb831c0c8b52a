"""deploy/k8s rendered by kustomize, and what the tests look up in the rendered documents."""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Iterator
from typing import Any

import yaml

from support.deploy.images import DEPLOY
from support.deploy.tools import tool

Document = dict[str, Any]

# The kustomizations under deploy/k8s.
RENDERS = ["base", "overlays/production"]


@functools.cache
def _rendered(kustomization: str) -> str:
    result = subprocess.run(
        [tool("kustomize"), "build", str(DEPLOY / "k8s" / kustomization)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def render(kustomization: str) -> list[Document]:
    """``kustomize build deploy/k8s/<kustomization>`` as documents (a fresh copy each call:
    kustomize runs once per kustomization and test session)."""
    return [doc for doc in yaml.safe_load_all(_rendered(kustomization)) if doc]


def of_kind(render: list[Document], kind: str) -> list[Document]:
    return [doc for doc in render if doc["kind"] == kind]


def one(render: list[Document], kind: str, name: str) -> Document:
    (found,) = [d for d in of_kind(render, kind) if d["metadata"]["name"] == name]
    return found


def shared_config_map(render: list[Document]) -> Document:
    """The ConfigMap of settings both services read (its name carries kustomize's hash)."""
    (config,) = [
        c
        for c in of_kind(render, "ConfigMap")
        if c["metadata"]["name"].startswith("segstream-config")
    ]
    return config


def shared_settings(render: list[Document]) -> dict[str, str]:
    return dict(shared_config_map(render)["data"])


def containers(render: list[Document]) -> Iterator[tuple[str, Document, Document]]:
    """Every container of every Deployment: ("deployment/container", container, pod spec)."""
    for deployment in of_kind(render, "Deployment"):
        spec = deployment["spec"]["template"]["spec"]
        for container in spec.get("initContainers", []) + spec["containers"]:
            yield f"{deployment['metadata']['name']}/{container['name']}", container, spec


def environment(render: list[Document], container: Document) -> dict[str, str]:
    """The literal environment Kubernetes gives the container: its ConfigMaps (``envFrom``),
    then its own ``env`` over them (values from ``valueFrom`` are left out)."""
    values: dict[str, str] = {}
    for source in container.get("envFrom", []):
        values |= one(render, "ConfigMap", source["configMapRef"]["name"])["data"]
    values |= {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
    return values
