"""Local secrets for ``make run``: a Standard Webhooks signing secret and a CRM bearer token."""

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
