"""``segstream-consumer``: run the consumer, or create the topics it needs."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from prometheus_client import start_http_server
from pydantic import ValidationError

from consumer.clients import KafkaClients
from consumer.errors import ConfigurationError, ConsumerError
from consumer.logs import configure_logging
from consumer.service import ConsumerService
from consumer.settings import ConsumerSettings
from consumer.shutdown import ShutdownDeadline
from consumer.state import ensure_changelog_topic
from consumer.state.changelog import REQUIRED_CLEANUP_POLICY
from consumer.topics import TopicSpec, dead_letter_tool_topics, ensure_topics

_log = logging.getLogger("consumer")

EXIT_CONFIGURATION = 2
"""Settings that cannot work: restarting with the same settings fails the same way."""
EXIT_FATAL = 3
"""A documented fatal condition at run time (README, "Fatal conditions"): the dead-letter topic or
the state changelog did not acknowledge, or another instance took this one's group.instance.id.
Nothing past the record that met it was committed; a restart carries on from there."""


def settings_problems(error: ValidationError) -> str:
    """``field: reason; ...`` without the values (``SEGSTREAM_CONSUMER_CRM_TOKEN`` is one)."""
    return "; ".join(
        f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in error.errors()
    )


def create_topics(settings: ConsumerSettings) -> None:
    """The input, dead-letter and state-changelog topics, all or none (see
    :func:`consumer.topics.ensure_topics`); an existing changelog is then checked to fit."""

    def spec(name: str, **config: str) -> TopicSpec:
        return TopicSpec(
            name,
            partitions=settings.topic_partitions,
            replication_factor=settings.topic_replication_factor,
            min_insync_replicas=settings.topic_min_insync_replicas,
            config=config,
        )

    clients = KafkaClients.from_settings(settings)
    changelog = settings.state_changelog_topic
    ensure_topics(
        clients,
        [
            spec(settings.topic),
            spec(settings.dead_letter_topic),
            spec(changelog, **{"cleanup.policy": REQUIRED_CLEANUP_POLICY}),
            # segstream-dlq's parked and audit topics (it creates them too when missing).
            *dead_letter_tool_topics(
                settings.dead_letter_topic,
                partitions=settings.topic_partitions,
                replication_factor=settings.topic_replication_factor,
                min_insync_replicas=settings.topic_min_insync_replicas,
            ),
        ],
    )
    ensure_changelog_topic(clients, settings.topic, changelog)


async def serve(settings: ConsumerSettings) -> None:
    service = ConsumerService(settings)
    stop = asyncio.Event()
    deadline = ShutdownDeadline(settings.shutdown_drain_s + settings.close_timeout_s)

    def stopping(sig: signal.Signals) -> None:
        _log.info(
            "stopping",
            extra={"signal": sig.name, "within_s": deadline.seconds},
        )
        stop.set()
        deadline.start()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping, sig)
    start_http_server(
        settings.metrics_port, addr=settings.metrics_host, registry=service.metrics.registry
    )
    _log.info(
        "consumer starting",
        extra={
            "topic": settings.topic,
            "group": settings.group_id,
            "crm": settings.crm_base_url,
            "metrics": f"http://{settings.metrics_host}:{settings.metrics_port}/metrics",
        },
    )
    if settings.shutdown_drain_s < settings.longest_write_s:
        _log.warning(
            "shutdown_drain_s is shorter than the longest CRM write; a write still running at "
            "SIGTERM may be cut off and sent again by the partition's next owner",
            extra={
                "shutdown_drain_s": settings.shutdown_drain_s,
                "longest_write_s": settings.longest_write_s,
            },
        )
    try:
        await service.run(stop)
    finally:
        deadline.cancel()
    _log.info("consumer stopped")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="segstream-consumer", description=__doc__)
    parser.add_argument("command", nargs="?", default="run", choices=["run", "create-topics"])
    args = parser.parse_args(argv)
    configure_logging()
    try:
        settings = ConsumerSettings()
    except ValidationError as exc:
        # Field names and reasons only: pydantic's own text echoes the values, secrets too.
        _log.error("cannot start: invalid settings: %s", settings_problems(exc))
        sys.exit(EXIT_CONFIGURATION)
    try:
        if args.command == "create-topics":
            create_topics(settings)
        else:
            asyncio.run(serve(settings))
    except ConfigurationError as exc:
        _log.error("cannot start: %s", exc)
        sys.exit(EXIT_CONFIGURATION)
    except ConsumerError as exc:
        _log.error("stopped: %s", exc, extra={"error_class": type(exc).__name__})
        sys.exit(EXIT_FATAL)


if __name__ == "__main__":
    main()
