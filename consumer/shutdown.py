"""A bound on how long a SIGTERM may take: the process exits on its own terms, not by SIGKILL.

After SIGTERM the consumer drains (``shutdown_drain_s``), commits and leaves the group. The last
two are librdkafka calls that cannot be interrupted, and both wait for a rebalance in progress:
a synchronous commit and ``rd_kafka_consumer_close()`` are held until the group's JoinGroup
round completes, and the broker holds that round until every member has rejoined or been
dropped, which for a member that vanished mid-rebalance is its ``session.timeout.ms`` (45 s by
default) or even the rebalance timeout (``max.poll.interval.ms``, 5 min). A rolling deploy is
exactly when rebalances are in progress. Kafka's Java consumer bounds ``close()`` for this
reason (``KafkaConsumer.close(Duration)``, 30 s by default); librdkafka has no such bound, so
this module provides it around the whole shutdown.

Exiting before the commit and the LeaveGroup loses nothing: every record whose offset could be
committed had its CRM write, state change and dead letter acknowledged first, so the next owner
re-reads at most what was not committed (and dedupe and the CRM's ``Idempotency-Key`` absorb
it). The cost is the group's: this member's partitions move only once its session times out.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

_log = logging.getLogger(__name__)

EXIT_SHUTDOWN_TIMEOUT = 4
"""SIGTERM was not followed by a clean leave within the bound (see the module docstring)."""


class ShutdownDeadline:
    """Once :meth:`start` is called, the process exits with :data:`EXIT_SHUTDOWN_TIMEOUT`
    after ``seconds`` unless :meth:`cancel` came first. ``exit_process`` is :func:`os._exit` (no
    cleanup: the thread that would run it is the one stuck in librdkafka); tests pass another.
    """

    def __init__(
        self,
        seconds: float,
        *,
        exit_process: Callable[[int], object] = os._exit,
    ) -> None:
        self.seconds = seconds
        self._exit = exit_process
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Idempotent: a second SIGTERM does not move the deadline."""
        with self._lock:
            if self._timer is not None:
                return
            self._timer = threading.Timer(self.seconds, self._expire)
            self._timer.daemon = True
            self._timer.name = "shutdown-deadline"
            self._timer.start()

    def cancel(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()

    def _expire(self) -> None:
        _log.error(
            "did not stop within %.0f s of SIGTERM: a rebalance in progress holds the final "
            "commit and the group leave; exiting without them (this instance's partitions move "
            "when its session times out, and resume from their last committed offsets)",
            self.seconds,
            extra={"seconds": self.seconds},
        )
        for handler in logging.getLogger().handlers:
            handler.flush()
        self._exit(EXIT_SHUTDOWN_TIMEOUT)
