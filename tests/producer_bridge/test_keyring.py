"""Secrets re-read while the bridge runs: a rotated file takes effect without a restart, a broken
one changes nothing, and failed checks cannot make the bridge read its files more than once per
interval."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from multidict import CIMultiDict
from standardwebhooks.webhooks import Webhook

from producer_bridge.auth import Authenticator
from producer_bridge.errors import AuthenticationError, ConfigurationError
from producer_bridge.keyring import (
    RELOAD_AFTER_FAILURE_MIN_INTERVAL_S,
    SecretsReloader,
    build_authenticator,
)
from producer_bridge.settings import BridgeSettings
from sandbox.secrets import new_webhook_secret

BODY = b'{"customerId": "C-1"}'
OLD, NEW = new_webhook_secret(), new_webhook_secret()


def signed(secret: str) -> CIMultiDict[str]:
    now = datetime.now(UTC)
    return CIMultiDict(
        {
            "webhook-id": "msg_1",
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(secret).sign("msg_1", now, BODY.decode()),
        }
    )


def rotate(path: Path, text: str) -> None:
    """Replace the file atomically, as the kubelet swaps a mounted Secret's files."""
    staged = path.with_suffix(".new")
    staged.write_text(text)
    os.replace(staged, path)


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "webhook-secrets"
    path.write_text(OLD + "\n")
    return path


def accepts(auth: Authenticator, secret: str) -> bool:
    headers = signed(secret)
    try:
        auth.verify_body(auth.credentials(headers), BODY, headers)
    except AuthenticationError:
        return False
    return True


def test_a_rotated_file_is_in_use_after_a_reload(secret_file: Path) -> None:
    settings = BridgeSettings(_env_file=None, webhook_secrets_file=secret_file)
    auth = build_authenticator(settings)
    reloader = SecretsReloader(settings, auth)
    assert accepts(auth, OLD)
    assert not reloader.reload()  # nothing changed yet

    rotate(secret_file, NEW + "\n")
    assert accepts(auth, OLD)  # until the file is re-read
    assert reloader.reload()
    assert accepts(auth, NEW)
    assert not accepts(auth, OLD)


@pytest.mark.parametrize(
    "broken",
    ["whsec_AA\n", "not*base64 at all\n", "", None],
    ids=["weak-secret", "malformed", "empty", "deleted"],
)
def test_a_broken_file_changes_nothing_and_says_why_once(
    secret_file: Path, broken: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    settings = BridgeSettings(_env_file=None, webhook_secrets_file=secret_file)
    auth = build_authenticator(settings)
    reloader = SecretsReloader(settings, auth)
    if broken is None:
        secret_file.unlink()
    else:
        rotate(secret_file, broken)
    assert not reloader.reload()
    assert not reloader.reload()
    assert accepts(auth, OLD)
    [line] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert line.getMessage() == "secrets not reloaded; keeping the current ones"
    assert "SEGSTREAM_BRIDGE_WEBHOOK_SECRETS_FILE" in line.reason  # type: ignore[attr-defined]
    assert "whsec_AA" not in line.reason  # type: ignore[attr-defined]


def test_failed_checks_claim_a_reload_at_most_once_per_interval(secret_file: Path) -> None:
    now = [1000.0]
    settings = BridgeSettings(_env_file=None, webhook_secrets_file=secret_file)
    reloader = SecretsReloader(settings, build_authenticator(settings), monotonic=lambda: now[0])
    assert reloader.claim_reload_after_failure()
    assert not reloader.claim_reload_after_failure()
    now[0] += RELOAD_AFTER_FAILURE_MIN_INTERVAL_S - 0.1
    assert not reloader.claim_reload_after_failure()
    now[0] += 0.1
    assert reloader.claim_reload_after_failure()
    reloader.reload()  # a scheduled reload counts as a read too
    assert not reloader.claim_reload_after_failure()


def test_secrets_from_the_environment_are_never_reloaded() -> None:
    settings = BridgeSettings(_env_file=None, webhook_secrets=OLD)  # type: ignore[arg-type]
    reloader = SecretsReloader(settings, build_authenticator(settings))
    assert not reloader.enabled
    assert not reloader.claim_reload_after_failure()
    assert not reloader.reload()


def test_a_weak_secret_at_start_names_the_file_setting(secret_file: Path) -> None:
    secret_file.write_text("whsec_AA\n")
    with pytest.raises(ConfigurationError, match="SEGSTREAM_BRIDGE_WEBHOOK_SECRETS_FILE"):
        build_authenticator(BridgeSettings(_env_file=None, webhook_secrets_file=secret_file))
