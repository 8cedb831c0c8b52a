"""``segstream-bridge``: serve the webhook receiver."""

from __future__ import annotations

import logging
import sys

from aiohttp import web
from pydantic import ValidationError

from producer_bridge.app import create_app
from producer_bridge.errors import ConfigurationError
from producer_bridge.keyring import build_authenticator
from producer_bridge.logs import configure_logging
from producer_bridge.publisher import build_publisher
from producer_bridge.settings import BridgeSettings

_log = logging.getLogger("producer_bridge")


def main() -> None:
    try:
        settings = BridgeSettings()
    except ValidationError as exc:
        configure_logging()
        # Field names and reasons only: pydantic's own text would echo the values, secrets too.
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        _log.error("cannot start: invalid settings: %s", problems)
        sys.exit(2)
    configure_logging(settings.log_level)
    try:
        authenticator = build_authenticator(settings)
    except ConfigurationError as exc:
        _log.error("cannot start: %s", exc)
        sys.exit(2)
    if authenticator.unsigned:
        _log.warning(
            "SEGSTREAM_BRIDGE_ALLOW_UNSIGNED: accepting unauthenticated requests; "
            "never run like this outside a development machine"
        )
    publisher = build_publisher(settings)
    app = create_app(settings, publisher, authenticator=authenticator)
    _log.info(
        "bridge listening",
        extra={
            "url": f"http://{settings.host}:{settings.port}",
            "topic": settings.topic,
            "kafka": settings.kafka_bootstrap_servers,
            "auth": authenticator.modes(),
        },
    )
    # On SIGTERM aiohttp stops listening at once, gives in-flight requests this long to get their
    # broker acknowledgement (or their 503), then runs the cleanup that flushes the producer.
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        print=None,
        shutdown_timeout=settings.delivery_wait_s + 1.0,
        access_log=None,
    )


if __name__ == "__main__":
    main()
