"""``segstream-bridge``: serve the webhook receiver."""

from __future__ import annotations

import logging
import sys

from aiohttp import web

from producer_bridge.app import Bridge, create_app
from producer_bridge.auth import SignatureVerifier
from producer_bridge.errors import ConfigurationError
from producer_bridge.logs import configure_logging
from producer_bridge.metrics import BridgeMetrics
from producer_bridge.publisher import KafkaPublisher, producer_config
from producer_bridge.settings import BridgeSettings
from schemas.codec import EventCodec

_log = logging.getLogger("producer_bridge")


def build_bridge(settings: BridgeSettings) -> Bridge:
    verifier = SignatureVerifier(settings.signing_secrets())
    registry = {"url": settings.schema_registry_url} if settings.schema_registry_url else None
    codec = EventCodec(settings.topic, registry)
    publisher = KafkaPublisher(
        producer_config(
            settings.kafka_bootstrap_servers,
            delivery_timeout_ms=settings.delivery_timeout_ms,
            linger_ms=settings.linger_ms,
        )
    )
    return Bridge(settings, publisher, verifier, codec, BridgeMetrics())


def main() -> None:
    configure_logging()
    settings = BridgeSettings()
    try:
        bridge = build_bridge(settings)
    except ConfigurationError as exc:
        _log.error("cannot start: %s", exc)
        sys.exit(2)
    _log.info(
        "bridge listening",
        extra={
            "url": f"http://{settings.host}:{settings.port}",
            "topic": settings.topic,
            "kafka": settings.kafka_bootstrap_servers,
        },
    )
    # shutdown_timeout: in-flight requests get this long to receive their broker ack after SIGTERM.
    web.run_app(
        create_app(bridge),
        host=settings.host,
        port=settings.port,
        print=None,
        shutdown_timeout=10.0,
        access_log=None,
    )


if __name__ == "__main__":
    main()
