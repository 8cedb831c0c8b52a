"""Bridge settings, read from ``SEGSTREAM_BRIDGE_*`` environment variables (or a ``.env`` file)."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from producer_bridge.errors import ConfigurationError
from schemas.topics import INTERACTIONS_TOPIC


class BridgeSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SEGSTREAM_BRIDGE_", env_file=".env", extra="ignore"
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices(
            "SEGSTREAM_BRIDGE_KAFKA_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS"
        ),
    )
    topic: str = INTERACTIONS_TOPIC
    schema_registry_url: str | None = None

    # Standard Webhooks secrets (``whsec_...``), whitespace-separated so that during a key
    # rotation the old and the new secret are both accepted.
    webhook_secrets: SecretStr | None = None
    webhook_secrets_file: Path | None = None

    # The seed's webhook limit: an Architect webhook body cannot exceed 10 KiB, so anything larger
    # is not from a flow and is refused before it is read into memory.
    max_event_bytes: int = Field(default=10 * 1024, ge=256)

    # How long the producer keeps retrying one record before the bridge gives up and answers 503.
    # Architect webhooks time out after ~10 s; answering 503 before that lets the sender retry
    # instead of guessing.
    delivery_timeout_ms: int = Field(default=8000, ge=1000)
    # A few milliseconds of batching costs nothing against a webhook round trip and multiplies
    # throughput under load (one ProduceRequest carries many events).
    linger_ms: int = Field(default=5, ge=0)

    @model_validator(mode="after")
    def _secret_file_or_value(self) -> BridgeSettings:
        if self.webhook_secrets is not None and self.webhook_secrets_file is not None:
            raise ValueError("set webhook_secrets or webhook_secrets_file, not both")
        return self

    def signing_secrets(self) -> list[str]:
        """Every active signing secret; raises :class:`ConfigurationError` when there is none."""
        if self.webhook_secrets_file is not None:
            try:
                text = self.webhook_secrets_file.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigurationError(
                    f"cannot read webhook secrets file {self.webhook_secrets_file}: {exc.strerror}"
                ) from exc
        elif self.webhook_secrets is not None:
            text = self.webhook_secrets.get_secret_value()
        else:
            text = ""
        secrets = text.split()
        if not secrets:
            raise ConfigurationError(
                "no webhook signing secret: set SEGSTREAM_BRIDGE_WEBHOOK_SECRETS or "
                "SEGSTREAM_BRIDGE_WEBHOOK_SECRETS_FILE"
            )
        return secrets
