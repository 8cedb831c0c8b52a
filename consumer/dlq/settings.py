"""``segstream-dlq`` settings, read from ``SEGSTREAM_DLQ_*`` environment variables."""

from __future__ import annotations

import getpass
import socket

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from consumer.state import changelog_topic_name
from kafka_config.security import KafkaSecuritySettings
from schemas.topics import AUDIT_SUFFIX, DEAD_LETTER_TOPIC, PARKED_SUFFIX


class DlqSettings(KafkaSecuritySettings):
    """Kafka TLS and SASL settings come from :class:`KafkaSecuritySettings`
    (``SEGSTREAM_DLQ_KAFKA_SECURITY_PROTOCOL``, ...), as the consumer's do."""

    model_config = SettingsConfigDict(
        env_prefix="SEGSTREAM_DLQ_", env_file=".env", extra="ignore", hide_input_in_errors=True
    )

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices(
            "SEGSTREAM_DLQ_KAFKA_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS"
        ),
    )
    dead_letter_topic: str = DEAD_LETTER_TOPIC
    # Unset: the dead-letter topic's name plus ``.parked`` / ``.audit``.
    parked_topic: str | None = None
    audit_topic: str | None = None
    # The replay group: its committed offsets say which dead letters were replayed or parked
    # (see consumer/dlq/ledger.py). ``replay`` and ``park`` share it, and its transactional id, so
    # only one of them runs at a time: a second run fences the first.
    group_id: str = "segstream-dlq"
    schema_registry_url: str | None = None
    # The segstream consumer group whose customer state a dry run consults (the count of
    # replays that would change nothing), and that state's changelog topic (unset: the
    # consumer's default, "{consumer_group_id}-customer-state-changelog").
    consumer_group_id: str = "segstream-crm"
    state_topic: str | None = None

    # A record replayed this many times already is parked instead of being replayed again.
    max_replays: int = Field(default=3, ge=0)
    # Records re-published per second (0 = no limit). Replays share the consumer group's CRM
    # budget with live traffic; this default equals the consumer's default group rate limit, so
    # a replay never builds a backlog faster than the consumer can send it.
    rate_per_s: float = Field(default=100.0, ge=0)
    # Who runs the tool, for the audit record; ``--operator`` overrides it. Default: the login
    # name and the host.
    operator: str | None = None

    # A run killed half-way leaves its last transaction open; consumers reading committed data
    # (the segstream consumer does) wait behind it on the partitions it wrote to, until the next
    # run aborts it or this timeout does. Short, because a transaction here holds one second of
    # re-publishing; the broker's floor is 1 s and librdkafka's default 60 s.
    transaction_timeout_ms: int = Field(default=30_000, ge=1_000)
    # How long a Kafka call may go without progress before the run stops (exit code 4).
    kafka_timeout_s: float = Field(default=60.0, gt=0)
    # The broker's ``offset.metadata.max.bytes`` (Kafka's default 4096): bounds the list of
    # handled records kept in the replay group's commit (consumer/dlq/ledger.py).
    offset_metadata_max_bytes: int = Field(default=4096, ge=256)

    # Topic creation for the parked and audit topics (created when missing): the production
    # defaults of `segstream-consumer create-topics` (a broker may be lost without losing or
    # refusing a write); a one-broker sandbox sets 1 and 1.
    topic_replication_factor: int = Field(default=3, ge=1)
    topic_min_insync_replicas: int = Field(default=2, ge=1)

    log_level: str = "INFO"

    @property
    def parked(self) -> str:
        return self.parked_topic or f"{self.dead_letter_topic}{PARKED_SUFFIX}"

    @property
    def state_changelog_topic(self) -> str:
        return self.state_topic or changelog_topic_name(self.consumer_group_id)

    @property
    def audit(self) -> str:
        return self.audit_topic or f"{self.dead_letter_topic}{AUDIT_SUFFIX}"

    def who(self, override: str | None = None) -> str:
        if override:
            return override
        if self.operator:
            return self.operator
        try:
            user = getpass.getuser()
        except (KeyError, OSError):  # no login name for this uid (a bare container)
            user = "unknown"
        return f"{user}@{socket.gethostname()}"
