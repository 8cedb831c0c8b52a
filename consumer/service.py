"""Assembles one consumer instance from its settings: Kafka, sink, policies, metrics."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from consumer.breaker import CircuitBreaker
from consumer.clients import KafkaClients
from consumer.deadletter import DeadLetterPublisher
from consumer.dedupe import DedupeIndex
from consumer.metrics import ConsumerMetrics
from consumer.pipeline import RecordProcessor
from consumer.processing.engine import EngineLimits, ProcessingEngine
from consumer.processing.holds import PartitionHolds
from consumer.ratelimit import GroupRateLimiter
from consumer.retry import RetryPolicy
from consumer.settings import ConsumerSettings
from consumer.sink.http import CrmHttpSink
from consumer.state import CustomerStates, KafkaChangelog, ensure_changelog_topic
from consumer.writer import SinkWriter
from schemas.codec import EventCodec

_log = logging.getLogger(__name__)


def consumer_config(settings: ConsumerSettings) -> dict[str, Any]:
    """The plain at-least-once configuration: offsets are stored by us after processing (never
    past an unfinished record) and committed by the client every second. The connection
    (bootstrap, security, logging) is added by :class:`~consumer.clients.KafkaClients`."""
    config: dict[str, Any] = {
        "group.id": settings.group_id,
        "partition.assignment.strategy": "cooperative-sticky",
        "enable.auto.offset.store": False,
        "enable.auto.commit": True,
        "auto.commit.interval.ms": 1000,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": settings.session_timeout_ms,
        # A third of the session timeout: the usual ratio, three missed beats before eviction.
        "heartbeat.interval.ms": max(settings.session_timeout_ms // 3, 1000),
        "statistics.interval.ms": settings.statistics_interval_ms,
        # Concurrency comes from distinct customers in flight, and a partition's records are
        # fetched as one contiguous chunk: with the default 1 MiB per partition the in-flight
        # bound can fill with one partition's few dozen customers while most connections idle.
        # 64 KiB (a few hundred events) per partition per fetch mixes the partitions.
        "max.partition.fetch.bytes": 64 * 1024,
    }
    if settings.group_instance_id:
        config["group.instance.id"] = settings.group_instance_id
    return config


class ConsumerService:
    def __init__(self, settings: ConsumerSettings, metrics: ConsumerMetrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or ConsumerMetrics()
        self.clients = KafkaClients.from_settings(settings)
        # One limiter paces every request of this instance: the writer takes a token per write,
        # the sink one per follow-up request (create after 404), and the sink feeds it the CRM's
        # rate-limit headers.
        limiter = GroupRateLimiter(settings.crm_rate_limit_per_s, settings.crm_rate_burst)
        self._sink = CrmHttpSink(
            settings.crm_base_url,
            settings.bearer_token(),
            timeout_s=settings.crm_timeout_s,
            max_connections=settings.crm_max_connections,
            pacer=limiter,
        )
        registry = {"url": settings.schema_registry_url} if settings.schema_registry_url else None
        self._dead_letters = DeadLetterPublisher(
            self.clients,
            settings.dead_letter_topic,
            settings.group_id,
            delivery_timeout_ms=settings.dead_letter_timeout_ms,
        )
        self._breaker = CircuitBreaker(failure_threshold=settings.breaker_failure_threshold)
        self._writer = SinkWriter(
            sink=self._sink,
            dead_letters=self._dead_letters,
            limiter=limiter,
            breaker=self._breaker,
            retry=RetryPolicy(
                initial_delay_s=settings.retry_initial_delay_s,
                max_delay_s=settings.retry_max_delay_s,
                max_attempts=settings.retry_max_attempts,
                max_elapsed_s=settings.retry_max_elapsed_s,
            ),
            metrics=self.metrics,
            max_concurrent_writes=settings.crm_max_connections,
            rejection_threshold=settings.breaker_rejection_threshold,
        )
        self._changelog = KafkaChangelog(
            self.clients,
            settings.state_changelog_topic,
            delivery_timeout_ms=settings.state_changelog_timeout_ms,
            read_timeout_s=settings.state_restore_timeout_s,
        )
        holds = PartitionHolds()
        processor = RecordProcessor(
            codec=EventCodec(
                settings.topic, registry, known_writer_schemas=settings.writer_schemas()
            ),
            writer=self._writer,
            states=CustomerStates(
                self._changelog,
                retention_ms=round(settings.state_retention_s * 1000),
                max_customers_per_partition=settings.state_max_customers_per_partition,
            ),
            dedupe=DedupeIndex(ttl_s=settings.dedupe_ttl_s),
            metrics=self.metrics,
            clients=self.clients,
            dedupe_ttl_s=settings.dedupe_ttl_s,
            holds=holds,
            hold_unknown_schemas=settings.unknown_writer_schema == "hold",
        )
        self._engine = ProcessingEngine(
            consumer_config(settings),
            settings.topic,
            processor,
            self.metrics,
            EngineLimits(
                max_in_flight=settings.max_in_flight,
                revoke_drain_s=settings.effective_revoke_drain_s,
                shutdown_drain_s=settings.shutdown_drain_s,
                lease_validity_s=settings.session_timeout_ms / 1000 / 2,
            ),
            clients=self.clients,
            holds=holds,
        )
        self._writer.lease = self._sink.lease = self._engine.lease
        self._breaker.on_state_change = self._circuit_changed

    def _circuit_changed(self, state: str) -> None:
        is_open = state != "closed"
        self._engine.pause_for_sink(is_open)
        self.metrics.circuit_open.set(1 if is_open else 0)
        _log.warning("sink circuit %s", state, extra={"circuit": state})

    async def run(self, stop: asyncio.Event) -> None:
        settings = self.settings
        try:
            # Before the first assignment: state read from a topic that is not co-partitioned
            # with the input would belong to other customers.
            await asyncio.to_thread(
                ensure_changelog_topic,
                self.clients,
                settings.topic,
                settings.state_changelog_topic,
            )
            await self._engine.run(stop)
        finally:
            await self._sink.close()
            await asyncio.to_thread(self._dead_letters.close)
            await asyncio.to_thread(self._changelog.close)
