"""The customer-state changelog topic: created like the input topic, or refused when it cannot
hold the state (Kafka Streams' rule for a changelog: co-partitioned and compacted)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource

from consumer.clients import KafkaClients
from consumer.errors import ConfigurationError
from consumer.state.changelog import ensure_changelog_topic
from support.kafka import TopicFactory

pytestmark = pytest.mark.kafka


def test_a_missing_changelog_is_created_compacted_with_the_input_topics_partitions(
    kafka_bootstrap: str, topics: TopicFactory
) -> None:
    source = topics.create("state-input", partitions=5, config={"min.insync.replicas": "1"})
    changelog = f"{source}-changelog"

    ensure_changelog_topic(KafkaClients(kafka_bootstrap), source, changelog)
    ensure_changelog_topic(KafkaClients(kafka_bootstrap), source, changelog)  # idempotent

    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    assert len(admin.list_topics(timeout=10).topics[changelog].partitions) == 5
    resource = ConfigResource(ConfigResource.Type.TOPIC, changelog)
    config = admin.describe_configs([resource])[resource].result(30)
    assert config["cleanup.policy"].value == "compact"


def test_a_changelog_with_another_partition_count_is_refused(
    kafka_bootstrap: str, topics: TopicFactory
) -> None:
    source = topics.create("state-input", partitions=4)
    changelog = topics.create("state-changelog", partitions=3, config={"cleanup.policy": "compact"})

    with pytest.raises(ConfigurationError, match="co-partitioned"):
        ensure_changelog_topic(KafkaClients(kafka_bootstrap), source, changelog)


def test_a_changelog_that_deletes_by_age_is_refused(
    kafka_bootstrap: str, topics: TopicFactory
) -> None:
    source = topics.create("state-input", partitions=3)
    changelog = topics.create("state-changelog", partitions=3, config={"cleanup.policy": "delete"})

    with pytest.raises(ConfigurationError, match=r"cleanup\.policy=delete"):
        ensure_changelog_topic(KafkaClients(kafka_bootstrap), source, changelog)


def test_a_missing_input_topic_is_refused(kafka_bootstrap: str) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        ensure_changelog_topic(KafkaClients(kafka_bootstrap), "no-such-topic-x1", "x1-changelog")


def test_instances_starting_together_all_accept_the_changelog_one_of_them_created(
    kafka_bootstrap: str, topics: TopicFactory
) -> None:
    # The production race behind a CI failure: the changelog, created a moment ago, was
    # described with 0 partitions and refused as "not co-partitioned".
    source = topics.create("state-input", partitions=6)
    changelog = f"{source}-changelog"

    def start() -> None:
        ensure_changelog_topic(KafkaClients(kafka_bootstrap), source, changelog)

    with ThreadPoolExecutor(max_workers=4) as pool:
        for started in [pool.submit(start) for _ in range(4)]:
            started.result(60)

    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    assert len(admin.list_topics(changelog, timeout=10).topics[changelog].partitions) == 6
