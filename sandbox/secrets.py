"""Local secrets for ``make run`` and deploy/compose.yaml: a Standard Webhooks signing secret and
a CRM bearer token."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from pathlib import Path


def new_webhook_secret() -> str:
    """``whsec_`` + base64 of 32 random bytes, the Standard Webhooks form."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def new_bearer_token() -> str:
    return secrets.token_urlsafe(32)


def ensure_secret_file(path: Path, factory: Callable[[], str]) -> str:
    """Reuse the secret in ``path``, or write a new one readable by the owner only."""
    if path.exists():
        existing = path.read_text(encoding="utf-8").strip()
        if existing:
            return existing
    path.parent.mkdir(parents=True, exist_ok=True)
    value = factory()
    path.touch(mode=0o600)
    path.write_text(value + "\n", encoding="utf-8")
    return value


# The file names deploy/compose.yaml mounts as secrets (SEGSTREAM_SECRETS_DIR).
COMPOSE_SECRET_FILES = {"webhook-secret": new_webhook_secret, "crm-token": new_bearer_token}


def ensure_compose_secrets(directory: Path) -> dict[str, Path]:
    """The secrets deploy/compose.yaml mounts, in ``directory`` (existing ones are kept).

    Compose mounts each file into containers that run as uid 10001, not as you, so the files
    are world-readable (0644) and the directory is yours alone (0700): other users of the
    machine cannot reach the files through it. Returns {file name: path}.
    """
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    paths = {}
    for name, factory in COMPOSE_SECRET_FILES.items():
        path = directory / name
        ensure_secret_file(path, factory)
        path.chmod(0o644)
        paths[name] = path
    return paths
