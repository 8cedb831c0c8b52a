"""A topic's metadata read while the cluster is still describing it: a topic created a moment
ago (by this process or an instance starting beside it) answers LEADER_NOT_AVAILABLE, or no
partitions, before it answers whole; none of those answers may be read as "0 partitions"."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import ClusterMetadata, PartitionMetadata, TopicMetadata

from consumer.errors import ConsumerError
from consumer.topics import describe_topic


def _topic(name: str, leaders: list[int], error: int | None = None) -> TopicMetadata:
    topic = TopicMetadata()
    topic.topic = name
    topic.error = KafkaError(error) if error is not None else None
    for number, leader in enumerate(leaders):
        partition = PartitionMetadata()
        partition.id, partition.leader, partition.replicas = number, leader, [1]
        topic.partitions[number] = partition
    return topic


class Answers:
    """A cluster that answers each Metadata request with the next of ``answers``."""

    def __init__(self, *answers: TopicMetadata | KafkaException | None) -> None:
        self._answers = list(answers)
        self.asked = 0

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> ClusterMetadata:
        answer = self._answers[min(self.asked, len(self._answers) - 1)]
        self.asked += 1
        if isinstance(answer, KafkaException):
            raise answer
        metadata = ClusterMetadata()
        if answer is not None:
            metadata.topics[answer.topic or ""] = answer
        return metadata


def test_a_topic_without_partitions_yet_is_asked_again_until_it_has_them() -> None:
    cluster = Answers(_topic("t", []), _topic("t", [-1, 1, -1]), _topic("t", [1, 1, 1]))

    described = describe_topic(cluster, "t", timeout=10)

    assert described is not None
    assert len(described.partitions) == 3
    assert cluster.asked == 3


def test_a_topic_whose_leader_is_not_available_yet_is_asked_again() -> None:
    cluster = Answers(_topic("t", [], error=KafkaError.LEADER_NOT_AVAILABLE), _topic("t", [1, 1]))

    described = describe_topic(cluster, "t", timeout=10)

    assert described is not None
    assert sorted(described.partitions) == [0, 1]


@pytest.mark.parametrize(
    "answer",
    [None, _topic("t", [], error=KafkaError.UNKNOWN_TOPIC_OR_PART)],
    ids=["absent", "unknown"],
)
def test_a_topic_the_cluster_does_not_know_is_none_at_once(answer: TopicMetadata | None) -> None:
    cluster = Answers(answer, _topic("t", [1]))

    assert describe_topic(cluster, "t", timeout=10) is None
    assert cluster.asked == 1


def test_a_topic_that_stays_half_described_is_an_error_at_the_deadline() -> None:
    cluster = Answers(_topic("t", [-1]))

    with pytest.raises(ConsumerError, match="not described with leaders within"):
        describe_topic(cluster, "t", timeout=0.5)


def test_a_cluster_that_cannot_be_asked_is_an_error() -> None:
    cluster = Answers(KafkaException(KafkaError(KafkaError._TRANSPORT)))

    with pytest.raises(ConsumerError, match="cannot describe t"):
        describe_topic(cluster, "t", timeout=1)


def test_a_topic_known_to_exist_is_asked_again_while_the_cluster_does_not_know_it() -> None:
    # CreateTopics answered TOPIC_ALREADY_EXISTS, and the broker asked next has not heard yet.
    cluster = Answers(
        _topic("t", [], error=KafkaError.UNKNOWN_TOPIC_OR_PART), None, _topic("t", [1, 1])
    )

    described = describe_topic(cluster, "t", timeout=10, exists=True)

    assert sorted(described.partitions) == [0, 1]
    assert cluster.asked == 3


def test_a_topic_known_to_exist_that_stays_unknown_is_an_error_at_the_deadline() -> None:
    cluster = Answers(None)

    with pytest.raises(ConsumerError, match="not described with leaders within"):
        describe_topic(cluster, "t", timeout=0.5, exists=True)
