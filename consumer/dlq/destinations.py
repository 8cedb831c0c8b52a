"""Where a replay may write: the topic a dead letter says it came from, within limits.

A dead letter's ``segstream.dlq.topic`` is a header, and headers are whatever the producer of
the record wrote. Taken at its word it could send a record into the dead-letter topic itself,
into the tool's parked or audit topics, into the consumer's compacted state changelog (where the
next restore reads a foreign record and compaction may drop the customer's real state), or into
a topic that does not exist, where every run's transaction aborts at its commit and the run
stops with nothing replayed, again and again. A record whose topic is refused is left in place,
like one with no origin: ``park`` it.
"""

from __future__ import annotations

from collections.abc import Iterable

from consumer.clients import KafkaClients
from consumer.errors import ConsumerError
from consumer.topics import describe_topic


class ReplayDestinations:
    """``allowed(topic)``: the topic exists, is not one of ``refused`` (the tool's own topics,
    the state changelog), and is not one of Kafka's internal topics (``__`` prefix). Each topic
    is described once per run; a cluster that cannot be asked refuses (nothing is written)."""

    def __init__(self, clients: KafkaClients, refused: Iterable[str], *, timeout_s: float) -> None:
        self._clients = clients
        self._refused = frozenset(refused)
        self._timeout_s = timeout_s
        self._known: dict[str, bool] = {}

    def allowed(self, topic: str) -> bool:
        if topic in self._refused or topic.startswith("__"):
            return False
        if topic not in self._known:
            try:
                described = describe_topic(self._clients.admin(), topic, self._timeout_s)
            except ConsumerError:
                return False  # asked again for the next record
            self._known[topic] = described is not None
        return self._known[topic]
