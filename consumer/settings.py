"""Consumer settings, read from ``SEGSTREAM_CONSUMER_*`` environment variables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from consumer.errors import ConfigurationError
from consumer.rejections import DEFAULT_REJECTION_THRESHOLD
from consumer.sink.http import REQUESTS_PER_WRITE
from consumer.sink.token import BearerToken
from consumer.state.changelog import changelog_topic_name
from kafka_config.security import KafkaSecuritySettings
from schemas.topics import DEAD_LETTER_TOPIC, INTERACTIONS_TOPIC

# After its last request a write still records its state change (or dead letter): milliseconds
# against a healthy broker. One second covers that with room.
_FINISH_MARGIN_S: Final = 1.0


class ConsumerSettings(KafkaSecuritySettings):
    """Kafka TLS and SASL settings come from :class:`KafkaSecuritySettings`
    (``SEGSTREAM_CONSUMER_KAFKA_SECURITY_PROTOCOL``, ...)."""

    model_config = SettingsConfigDict(
        env_prefix="SEGSTREAM_CONSUMER_",
        env_file=".env",
        extra="ignore",
        # A validation error must never quote a value: some of them are secrets.
        hide_input_in_errors=True,
    )

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices(
            "SEGSTREAM_CONSUMER_KAFKA_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS"
        ),
    )
    group_id: str = "segstream-crm"
    # Static membership: a restarted pod with the same id gets its partitions back without a
    # rebalance, as long as it returns within session.timeout.ms.
    group_instance_id: str | None = None
    topic: str = INTERACTIONS_TOPIC
    dead_letter_topic: str = DEAD_LETTER_TOPIC
    schema_registry_url: str | None = None
    # Avro schema files (.avsc) of contract versions newer than this release ships, comma-
    # separated: during a rolling upgrade where producers moved first, a consumer told of the
    # new writer schema reads its records instead of holding their partitions.
    writer_schema_files: str = ""
    # A record whose writer schema is unknown holds its partition until a consumer that knows
    # the schema takes it over. "dead-letter" is the escape hatch for an operator who has found
    # such records to be garbage (bytes that only look like the Confluent framing, say).
    unknown_writer_schema: Literal["hold", "dead-letter"] = "hold"

    # Topic creation (``segstream-consumer create-topics``); production clusters usually manage
    # topics elsewhere (deploy/ has Strimzi KafkaTopic resources with the same values).
    topic_partitions: int = Field(default=12, ge=1)
    # Production defaults: three copies, and a write acknowledged (acks=all) only once two hold
    # it, so one broker can be lost (or restarted for an upgrade) without losing or refusing a
    # record. Kafka's documentation recommends exactly this pair. A one-broker sandbox sets 1/1.
    topic_replication_factor: int = Field(default=3, ge=1)
    topic_min_insync_replicas: int = Field(default=2, ge=1)

    crm_base_url: str = "http://127.0.0.1:8090"
    crm_token: SecretStr | None = None
    crm_token_file: Path | None = None
    # The token file is read again this often (and when the CRM answers 401): Kubernetes
    # updates a mounted Secret in place within about a minute, so a rotated token is in use
    # within ~2 minutes, for one small file read per minute. See consumer/sink/token.py.
    crm_token_refresh_s: float = Field(default=60.0, gt=0)
    # The seed's Function used a 5 s axios timeout; longer only holds a customer's key hostage.
    crm_timeout_s: float = Field(default=5.0, gt=0)
    # Keep-alive pool size: enough for the in-flight bound, so no request waits for a socket.
    crm_max_connections: int = Field(default=100, ge=1)

    # The CRM's rate limit for this whole consumer group; each instance enforces its share
    # (rate x assigned partitions / all partitions). 0 = unlimited. Set it a few percent under
    # the CRM's real limit: the margin absorbs clock skew between instances and retries.
    crm_rate_limit_per_s: float = Field(default=100.0, ge=0)
    # Burst for the group, split like the rate. Small, because every instance may burst at
    # once after a rebalance and the CRM's own bucket is usually small too.
    crm_rate_burst: int = Field(default=10, ge=1)

    # Records fetched and not yet finished, all partitions together; at the bound partitions
    # are paused. See consumer/processing/engine.py EngineLimits for the reasoning.
    max_in_flight: int = Field(default=1000, ge=1)
    # An event id finished within this window is skipped when it comes again (sender retries,
    # the platform redelivering). The seed's Data Store used 1 h.
    dedupe_ttl_s: float = Field(default=3600.0, ge=0)

    # Transient sink errors: exponential backoff with full jitter between these, up to these
    # bounds (counted only while the CRM serves others), then the dead-letter topic.
    retry_initial_delay_s: float = Field(default=0.2, gt=0)
    retry_max_delay_s: float = Field(default=30.0, gt=0)
    retry_max_attempts: int = Field(default=10, ge=1)
    retry_max_elapsed_s: float = Field(default=300.0, gt=0)
    # This many consecutive transient failures (across all customers) open the circuit:
    # consumption pauses and one probe at a time tests the CRM.
    breaker_failure_threshold: int = Field(default=5, ge=1)
    # Rejections (400/410/413/415/422) from this many different customers in a row, with no
    # successful write between them, mean the sink is unusable (a misconfigured URL or gateway
    # answering 400 to everything), not that the messages are bad: the circuit opens and those
    # records wait instead of being dead-lettered. 0 = every rejection is dead-lettered at once.
    # See consumer/rejections.py for the default's reasoning.
    breaker_rejection_threshold: int = Field(default=DEFAULT_REJECTION_THRESHOLD, ge=0)

    # How long the group waits for a silent member before moving its partitions. Lower means
    # faster failover after a crash, higher means fewer needless rebalances on GC or network
    # hiccups; librdkafka's default is 45 s. With static membership keep it above a restart.
    session_timeout_ms: int = Field(default=45_000, ge=6_000)
    # SIGTERM: writes on the wire get this long to finish before the final commit; records
    # waiting for anything else are dropped at once (read again after the restart). It must fit
    # the platform's grace period (Kubernetes: 30 s), so it is not forced above the longest
    # write like the revoke drain; the consumer warns at start when it is shorter.
    shutdown_drain_s: float = Field(default=20.0, ge=0)
    # After the drain, the final commit and the group leave get this long; the process exits
    # within shutdown_drain_s + close_timeout_s of SIGTERM whatever a rebalance in progress makes
    # librdkafka wait for (consumer/shutdown.py). 15 s: a commit and a LeaveGroup take
    # milliseconds in a settled group, and 20 + 15 s leaves the Deployment's 45 s grace period
    # room for the process to exit before Kubernetes' SIGKILL.
    close_timeout_s: float = Field(default=15.0, gt=0)
    # A revoked partition's writes on the wire get this long to finish before the partition is
    # handed over. Unset: the longest a write can take (crm_timeout_s x the requests of one
    # write) plus a second for its state change or dead letter; a set value must be at least
    # that long, or a write abandoned mid-way could land after the new owner's. It must also end
    # well within max.poll.interval.ms (300 s), the time the group waits for a member in a
    # rebalance.
    revoke_drain_s: float | None = Field(default=None, ge=0, lt=300)
    # librdkafka statistics (consumer lag per partition) are refreshed this often.
    statistics_interval_ms: int = Field(default=5_000, ge=0)

    # How long a dead letter may take to be acknowledged before the consumer gives up and stops
    # (it never moves past a record it could not park). Long enough to ride out a leader
    # election; short enough that a dead-letter topic that is really gone is noticed.
    dead_letter_timeout_ms: int = Field(default=30_000, ge=1_000)

    # Customer state (per attribute, the version of the newest value the CRM holds) lives in a
    # compacted changelog topic co-partitioned with the input; default
    # "{group_id}-customer-state-changelog", created like the input topic when missing.
    state_topic: str | None = None
    # State of a customer that did not change for this long (in stream time: record timestamps)
    # is forgotten. Older events for a forgotten customer cannot be ordered any more and are
    # skipped as "expired". The platform's event bridge redelivers for up to 24 h and dead
    # letters are usually replayed within days: a week covers both with room.
    state_retention_s: float = Field(default=7 * 86_400.0, ge=86_400.0)
    # A hard bound per partition on top of the retention; past it the least recently changed
    # customers are forgotten first. bench/state measures ~400 bytes of memory per customer, so
    # 250,000 is ~100 MB per partition: an instance that owns all 12 partitions of a busy topic
    # stays within a 2 GiB container. Raise it with the memory limit when a week of customers
    # does not fit (expired events are the sign).
    state_max_customers_per_partition: int = Field(default=250_000, ge=1)
    # Like the dead-letter timeout: a state change not acknowledged in this time stops the
    # consumer (its offset must not be committed without the state that goes with it).
    state_changelog_timeout_ms: int = Field(default=30_000, ge=1_000)
    # One attempt to read a partition's changelog on assignment; a failed one is retried.
    state_restore_timeout_s: float = Field(default=300.0, gt=0)

    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=9102, ge=0, le=65535)

    @model_validator(mode="after")
    def _token_file_or_value(self) -> ConsumerSettings:
        if self.crm_token is not None and self.crm_token_file is not None:
            raise ValueError("set crm_token or crm_token_file, not both")
        if self.topic_min_insync_replicas > self.topic_replication_factor:
            raise ValueError(
                "topic_min_insync_replicas must not exceed topic_replication_factor "
                "(no acks=all write could ever succeed)"
            )
        return self

    @model_validator(mode="after")
    def _drains_outlast_a_write(self) -> ConsumerSettings:
        longest = self.longest_write_s
        if self.revoke_drain_s is not None and self.revoke_drain_s < longest:
            raise ValueError(
                f"revoke_drain_s ({self.revoke_drain_s:g} s) is shorter than the longest write: "
                f"{REQUESTS_PER_WRITE} requests x crm_timeout_s ({self.crm_timeout_s:g} s) "
                f"= {longest:g} s"
            )
        return self

    @property
    def longest_write_s(self) -> float:
        """The longest one write to the CRM can take (every request of it timing out)."""
        return REQUESTS_PER_WRITE * self.crm_timeout_s

    @property
    def effective_revoke_drain_s(self) -> float:
        if self.revoke_drain_s is not None:
            return self.revoke_drain_s
        return self.longest_write_s + _FINISH_MARGIN_S

    def writer_schemas(self) -> list[dict[str, Any]]:
        schemas = []
        for name in filter(None, (part.strip() for part in self.writer_schema_files.split(","))):
            try:
                schemas.append(json.loads(Path(name).read_text(encoding="utf-8")))
            except (OSError, ValueError) as exc:
                raise ConfigurationError(f"cannot read writer schema file {name}: {exc}") from exc
        return schemas

    @property
    def state_changelog_topic(self) -> str:
        return self.state_topic or changelog_topic_name(self.group_id)

    def bearer_token(self) -> BearerToken:
        """The CRM token, followed through rotations of its file; ConfigurationError when
        there is none or its file cannot be read."""
        if self.crm_token_file is not None:
            return BearerToken(path=self.crm_token_file, refresh_s=self.crm_token_refresh_s)
        if self.crm_token is not None and self.crm_token.get_secret_value().strip():
            return BearerToken(self.crm_token.get_secret_value())
        raise ConfigurationError(
            "no CRM token: set SEGSTREAM_CONSUMER_CRM_TOKEN or SEGSTREAM_CONSUMER_CRM_TOKEN_FILE"
        )
