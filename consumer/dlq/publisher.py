"""Kafka transactions: re-published records and the replay group's offsets, all or nothing.

Each transaction holds up to :data:`MAX_RECORDS` records or :data:`MAX_SECONDS` of work; its
commit carries the replay group's new offsets (``send_offsets_to_transaction``). So:

* a record is visible in its destination topic to a ``read_committed`` reader (the segstream
  consumer is one) exactly when the group's offsets say it was handled;
* a run killed at any point leaves one open transaction; the next run's ``init_transactions``
  (same ``transactional.id``) aborts it, or the broker does after ``transaction.timeout.ms``.
  Its records are never seen, its offsets never committed, and the next run does that part again;
* a second run of the same group fences the first (Kafka producer fencing, KIP-98): the first
  gets a fatal error at its next transactional call and stops with exit code 3.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Final, TypeVar

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from consumer.clients import KafkaClients
from consumer.dlq.errors import FencedError, KafkaUnavailableError
from consumer.dlq.records import Headers

# A transaction per this many records or this long, whichever comes first. Each commit costs a
# few round trips (~10 ms on one host); 100 records keeps that under a tenth of the work at full
# speed, and one second bounds both what a kill undoes and how long a read_committed consumer
# waits behind an open transaction.
MAX_RECORDS: Final = 100
MAX_SECONDS: Final = 1.0

_FENCED: Final = frozenset(
    {
        KafkaError._FENCED,
        KafkaError.PRODUCER_FENCED,
        KafkaError.INVALID_PRODUCER_EPOCH,
        KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    }
)
_log = logging.getLogger(__name__)
T = TypeVar("T")


def transactional_id(group_id: str) -> str:
    """Stable per replay group: what makes a second run fence the first."""
    return f"{group_id}.tx"


class TransactionalPublisher:
    def __init__(
        self,
        clients: KafkaClients,
        group_id: str,
        *,
        transaction_timeout_ms: int,
        timeout_s: float,
    ) -> None:
        self._timeout_s = timeout_s
        self._producer = clients.producer(
            "segstream-dlq",
            {
                "transactional.id": transactional_id(group_id),
                "transaction.timeout.ms": transaction_timeout_ms,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
            },
        )
        self._open = False
        self._opened_at = 0.0
        self.pending = 0
        self._failures: list[str] = []
        # Fences any earlier run of this group and aborts the transaction it left open.
        self._call("init_transactions", self._producer.init_transactions)

    @property
    def due(self) -> bool:
        """Time to commit: the transaction is full or old enough."""
        return self._open and (
            self.pending >= MAX_RECORDS or time.monotonic() - self._opened_at >= MAX_SECONDS
        )

    def produce(self, topic: str, key: bytes | None, value: bytes | None, headers: Headers) -> None:
        self._begin()
        wire: list[tuple[str, str | bytes | None]] = list(headers)
        try:
            while True:
                try:
                    self._producer.produce(
                        topic, key=key, value=value, headers=wire, on_delivery=self._delivered
                    )
                    break
                except BufferError:  # the local queue is full: let deliveries drain it
                    self._producer.poll(0.1)
            # poll() serves delivery reports, and raises a fatal error (fencing) as it happens.
            self._producer.poll(0)
        except KafkaException as exc:
            self._fail("produce", exc)
        self.pending += 1

    def commit(self, offsets: list[TopicPartition], group_metadata: Any) -> None:
        """Commit what was produced together with ``offsets`` for the replay group."""
        self._begin()
        self._call(
            "send_offsets_to_transaction",
            lambda: self._producer.send_offsets_to_transaction(
                offsets, group_metadata, self._timeout_s
            ),
        )
        self._call("commit_transaction", lambda: self._producer.commit_transaction(self._timeout_s))
        if self._failures:  # librdkafka fails the commit itself; this is a second line
            raise KafkaUnavailableError(f"records not acknowledged: {self._failures[:3]}")
        self._open = False
        self.pending = 0

    def abort(self) -> None:
        """Abort an open transaction (best effort: the next run's init aborts it anyway)."""
        if not self._open:
            return
        self._open = False
        self.pending = 0
        try:
            self._producer.abort_transaction(self._timeout_s)
        except KafkaException as exc:
            _log.warning("abort_transaction failed: %s", exc)

    def close(self) -> None:
        """Abort what is open. No flush: after a commit nothing is pending, after an abort
        nothing may be delivered, and a fenced producer can deliver nothing at all."""
        self.abort()

    def _begin(self) -> None:
        if self._open:
            return
        self._call("begin_transaction", self._producer.begin_transaction)
        self._open = True
        self._opened_at = time.monotonic()

    def _delivered(self, error: KafkaError | None, _: Any) -> None:
        if error is not None:
            self._failures.append(error.str())

    def _call(self, what: str, operation: Callable[[], T]) -> T:
        """Retry what librdkafka calls retriable until the deadline; abort what needs it."""
        deadline = time.monotonic() + self._timeout_s
        while True:
            try:
                return operation()
            except KafkaException as exc:
                error = exc.args[0] if exc.args else None
                if (
                    isinstance(error, KafkaError)
                    and error.retriable()
                    and time.monotonic() < deadline
                ):
                    time.sleep(0.2)
                    continue
                self._fail(what, exc)

    def _fail(self, what: str, exc: KafkaException) -> Any:
        error = exc.args[0] if exc.args else None
        if isinstance(error, KafkaError) and error.code() == KafkaError._FATAL:
            # produce() says only "fatal"; poll() raises the fatal error itself (fenced?).
            try:
                self._producer.poll(0)
            except KafkaException as fatal:
                exc = fatal
                error = fatal.args[0] if fatal.args else error
        text = error.str() if isinstance(error, KafkaError) else str(exc)
        if isinstance(error, KafkaError) and error.code() in _FENCED:
            self._open = False
            raise FencedError(
                f"{what}: another run of this replay group took over ({text}); "
                "this run's open transaction is aborted"
            ) from exc
        if isinstance(error, KafkaError) and error.txn_requires_abort():
            self.abort()
            raise KafkaUnavailableError(f"{what} failed, transaction aborted: {text}") from exc
        self._open = False
        raise KafkaUnavailableError(f"{what} failed: {text}") from exc
