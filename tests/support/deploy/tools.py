"""The external tools of the deploy checks, and what to do when one is missing.

``make deploy-check`` sets ``SEGSTREAM_DEPLOY_CHECK=1`` and CI sets ``CI``: then a missing engine,
tool or schema directory fails the test that needs it, naming what to install. Without either
(a plain ``pytest`` on a laptop) the same test is skipped with that reason.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import NoReturn

import pytest

from support.deploy.images import REPO


def unavailable(reason: str) -> NoReturn:
    """Fail under ``make deploy-check`` or in CI, skip elsewhere."""
    if os.environ.get("SEGSTREAM_DEPLOY_CHECK") or os.environ.get("CI"):
        pytest.fail(f"{reason} (README, 'Deploying': deploy/check/install-tools.sh)")
    pytest.skip(reason)


def tool(name: str) -> str:
    """The path of the command ``name``; fails or skips when it is not installed."""
    path = shutil.which(name)
    if path is None:
        unavailable(f"{name} is not installed")
    return path


def crd_schemas() -> Path:
    """The custom resources' JSON schemas: ``$SEGSTREAM_K8S_CRD_SCHEMAS``, else
    ``../shared/k8s-crd-schemas`` beside the checkout (they are not copied into the project)."""
    explicit = os.environ.get("SEGSTREAM_K8S_CRD_SCHEMAS")
    path = Path(explicit) if explicit else REPO.parent / "shared" / "k8s-crd-schemas"
    if not path.is_dir() or not any(path.glob("*/*.json")):
        unavailable(
            f"no custom-resource schemas at {path}: set SEGSTREAM_K8S_CRD_SCHEMAS to a directory "
            "laid out {group}/{kind}_{version}.json (kubeconform's layout)"
        )
    return path
