"""Bridge settings, read from ``SEGSTREAM_BRIDGE_*`` environment variables (or a ``.env`` file)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from kafka_config.security import KafkaSecuritySettings
from producer_bridge.errors import ConfigurationError
from schemas.topics import INTERACTIONS_TOPIC

# The platform's conversation events carry no CRM customer id. The external contact the
# conversation was linked to is the closest thing: ``customer.end`` events name it in
# ``externalContactId``; ``acw`` events only list the conversation's contacts.
DEFAULT_CUSTOMER_KEY_FIELDS = ("externalContactId", "conversationExternalContactIds")


class BridgeSettings(KafkaSecuritySettings):
    """Kafka TLS and SASL settings come from :class:`KafkaSecuritySettings`
    (``SEGSTREAM_BRIDGE_KAFKA_SECURITY_PROTOCOL``, ...)."""

    model_config = SettingsConfigDict(
        env_prefix="SEGSTREAM_BRIDGE_",
        env_file=".env",
        extra="ignore",
        # A validation error must never quote a value: some of them are secrets.
        hide_input_in_errors=True,
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    log_level: str = "INFO"

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
    # Static shared secrets, for senders that can only add a fixed header (the platform's data
    # actions). Weaker than a signature: the header is replayable and does not cover the body.
    shared_secrets: SecretStr | None = None
    shared_secrets_file: Path | None = None
    shared_secret_header: str = Field(
        default="X-Segstream-Token", min_length=1, pattern=r"^[A-Za-z0-9-]+$"
    )
    # Development only: start with no secret at all and accept every request unauthenticated.
    allow_unsigned: bool = False
    # How often the secrets files are re-read (they are also re-read, at most every few seconds,
    # when a request fails to authenticate). Kubernetes updates a mounted Secret in place within
    # about a minute of a change (kubelet sync period plus its cache TTL).
    secrets_reload_interval_s: float = Field(default=60.0, ge=1.0)

    # The seed's webhook limit: an Architect webhook body cannot exceed 10 KiB, so anything larger
    # is not from a flow and is refused before it is read into memory.
    max_event_bytes: int = Field(default=10 * 1024, ge=256)
    # One batch request may carry this many events (a bounded unit of work and of memory).
    max_batch_events: int = Field(default=100, ge=1, le=10_000)
    # The whole body must arrive within this time after the handler starts reading it, or the
    # answer is 408 and the connection is closed: a slow or stalled sender cannot hold a
    # connection and its buffers for ever. A 1 MiB batch needs ~100 kB/s to make it; a flow's
    # 10 KiB webhook takes milliseconds.
    body_read_timeout_ms: int = Field(default=10_000, ge=100)

    # Which fields of a platform conversation event hold the customer key, in order of preference;
    # a list-valued field (``conversationExternalContactIds``) gives its first non-empty entry.
    platform_customer_key_fields: Annotated[list[str], NoDecode] = Field(
        default=list(DEFAULT_CUSTOMER_KEY_FIELDS), min_length=1
    )

    # How long the producer keeps retrying one record before the bridge gives up and answers 503.
    # Architect webhooks time out after ~10 s; answering 503 before that lets the sender retry
    # instead of guessing.
    delivery_timeout_ms: int = Field(default=8000, ge=1000)
    # A few milliseconds of batching costs nothing against a webhook round trip and multiplies
    # throughput under load (one ProduceRequest carries many events).
    linger_ms: int = Field(default=5, ge=0)
    # Record batches are compressed by librdkafka's own threads (no GIL); lz4 is the cheapest.
    compression_type: Literal["none", "gzip", "snappy", "lz4", "zstd"] = "lz4"
    # Records waiting in the producer for an acknowledgement. When the broker is away this fills
    # up, and from then on a request is answered 503 at once instead of queueing without bound.
    producer_queue_max_messages: int = Field(default=100_000, ge=1)
    # What a 503 tells the sender to wait: about a KRaft leader election plus a metadata refresh.
    retry_after_s: int = Field(default=2, ge=1)
    # /readyz must answer well inside a kubelet probe's default 1 s timeout.
    readiness_timeout_ms: int = Field(default=800, ge=50)

    @field_validator("platform_customer_key_fields", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _secret_file_or_value(self) -> BridgeSettings:
        if self.webhook_secrets is not None and self.webhook_secrets_file is not None:
            raise ValueError("set webhook_secrets or webhook_secrets_file, not both")
        if self.shared_secrets is not None and self.shared_secrets_file is not None:
            raise ValueError("set shared_secrets or shared_secrets_file, not both")
        return self

    @property
    def max_batch_bytes(self) -> int:
        """The batch body limit: every event at its own limit, plus 16 bytes each of array
        punctuation and whitespace. Known before reading, so a batch is bounded like an event."""
        return self.max_batch_events * (self.max_event_bytes + 16) + 2

    @property
    def body_read_timeout_s(self) -> float:
        return self.body_read_timeout_ms / 1000

    @property
    def delivery_wait_s(self) -> float:
        """How long a request waits for its acknowledgement: the producer's own timeout plus a
        margin for the delivery report to arrive; past it the answer is 503 regardless."""
        return self.delivery_timeout_ms / 1000 + 2.0

    @property
    def signing_secrets_setting(self) -> str:
        """The environment variable the signing secrets come from (for error messages)."""
        suffix = "_FILE" if self.webhook_secrets_file is not None else ""
        return f"SEGSTREAM_BRIDGE_WEBHOOK_SECRETS{suffix}"

    @property
    def shared_secrets_setting(self) -> str:
        suffix = "_FILE" if self.shared_secrets_file is not None else ""
        return f"SEGSTREAM_BRIDGE_SHARED_SECRETS{suffix}"

    @property
    def has_secret_files(self) -> bool:
        """Whether any secret comes from a file, which may change while the bridge runs."""
        return self.webhook_secrets_file is not None or self.shared_secrets_file is not None

    def signing_secrets(self) -> list[str]:
        """Every active Standard Webhooks secret (may be empty)."""
        return _secret_words(
            self.webhook_secrets, self.webhook_secrets_file, self.signing_secrets_setting
        )

    def shared_secret_values(self) -> list[str]:
        """Every active static shared secret (may be empty)."""
        return _secret_words(
            self.shared_secrets, self.shared_secrets_file, self.shared_secrets_setting
        )


def _secret_words(value: SecretStr | None, path: Path | None, setting: str) -> list[str]:
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise ConfigurationError(f"{setting}: cannot read {path}: {reason}") from exc
    elif value is not None:
        text = value.get_secret_value()
    else:
        text = ""
    return text.split()
