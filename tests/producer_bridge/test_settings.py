"""Settings as an operator gives them: environment variables and mounted secret files."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from producer_bridge.errors import ConfigurationError
from producer_bridge.settings import BridgeSettings


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env file
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)


def test_customer_key_fields_are_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "SEGSTREAM_BRIDGE_PLATFORM_CUSTOMER_KEY_FIELDS", " crmId, externalContactId "
    )
    assert BridgeSettings().platform_customer_key_fields == ["crmId", "externalContactId"]


def test_an_empty_customer_key_list_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGSTREAM_BRIDGE_PLATFORM_CUSTOMER_KEY_FIELDS", " , ")
    with pytest.raises(ValidationError):
        BridgeSettings()


def test_secrets_come_from_a_file_whitespace_separated(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "webhook").write_text("whsec_b2xk\nwhsec_bmV3\n")
    (tmp_path / "shared").write_text("s3cret\n")
    monkeypatch.setenv("SEGSTREAM_BRIDGE_WEBHOOK_SECRETS_FILE", str(tmp_path / "webhook"))
    monkeypatch.setenv("SEGSTREAM_BRIDGE_SHARED_SECRETS_FILE", str(tmp_path / "shared"))
    settings = BridgeSettings()
    assert settings.signing_secrets() == ["whsec_b2xk", "whsec_bmV3"]
    assert settings.shared_secret_values() == ["s3cret"]


def test_a_secret_given_as_value_is_not_shown_by_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGSTREAM_BRIDGE_SHARED_SECRETS", "hunter2")
    settings = BridgeSettings()
    assert settings.shared_secret_values() == ["hunter2"]
    assert "hunter2" not in repr(settings)


def test_value_and_file_together_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGSTREAM_BRIDGE_SHARED_SECRETS", "a")
    monkeypatch.setenv("SEGSTREAM_BRIDGE_SHARED_SECRETS_FILE", "/dev/null")
    with pytest.raises(ValidationError, match="not both"):
        BridgeSettings()


def test_an_unreadable_secret_file_is_a_configuration_error(tmp_path: Path) -> None:
    settings = BridgeSettings(webhook_secrets_file=tmp_path / "missing")
    with pytest.raises(
        ConfigurationError, match="SEGSTREAM_BRIDGE_WEBHOOK_SECRETS_FILE: cannot read"
    ):
        settings.signing_secrets()


def test_the_batch_body_limit_fits_a_full_batch_of_events_at_their_limit() -> None:
    settings = BridgeSettings(max_event_bytes=1000, max_batch_events=3)
    widest = "[" + ", ".join(["x" * 1000] * 3) + "]"
    assert len(widest) <= settings.max_batch_bytes < 4 * 1000
