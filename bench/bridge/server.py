"""The baseline: the bridge's own aiohttp application, answering 202 right after validation.

Same routes, same authentication, parsing, validation, Avro encoding and logging as
``python -m producer_bridge``; only the publisher is replaced by one that acknowledges every
record at once without Kafka. It exists for the benchmark only and is deliberately not reachable
from the bridge's own command line: a 202 from it is no promise at all.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from aiohttp import web

from producer_bridge.app import create_app
from producer_bridge.errors import PublishUnavailableError
from producer_bridge.logs import configure_logging
from producer_bridge.publisher import Delivered, OutgoingRecord
from producer_bridge.settings import BridgeSettings


class AcknowledgeEverything:
    """A publisher that stores nothing and says it did."""

    def __init__(self) -> None:
        self._offsets = itertools.count()

    async def publish_all(
        self, topic: str, records: Sequence[OutgoingRecord]
    ) -> list[Delivered | PublishUnavailableError]:
        return [Delivered(topic, 0, next(self._offsets)) for _ in records]

    def ready(self, topic: str, timeout: float) -> bool:
        return True

    def queued(self) -> int:
        return 0

    def close(self, timeout: float = 10.0) -> int:
        return 0


def main() -> None:
    settings = BridgeSettings()
    configure_logging(settings.log_level)
    web.run_app(
        create_app(settings, AcknowledgeEverything()),
        host=settings.host,
        port=settings.port,
        print=None,
        access_log=None,
    )


if __name__ == "__main__":
    main()
