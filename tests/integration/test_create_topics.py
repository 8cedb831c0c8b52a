"""``segstream-consumer create-topics``: production replication by default, all or nothing."""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource

from sandbox.kafka.broker import LocalKafka
from schemas.topics import AUDIT_SUFFIX, PARKED_SUFFIX
from support.commands import run_create_topics

pytestmark = pytest.mark.kafka


def command_env(bootstrap: str, **settings: str) -> dict[str, str]:
    """The environment of one operator's run: fresh topic names, nothing from the caller's."""
    names = uuid.uuid4().hex[:8]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGSTREAM_")}
    env |= {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "SEGSTREAM_CONSUMER_TOPIC": f"ct-{names}",
        "SEGSTREAM_CONSUMER_DEAD_LETTER_TOPIC": f"ct-{names}.dlq",
        "SEGSTREAM_CONSUMER_GROUP_ID": f"ct-group-{names}",
        "SEGSTREAM_CONSUMER_TOPIC_PARTITIONS": "3",
    }
    return env | {f"SEGSTREAM_CONSUMER_{name.upper()}": value for name, value in settings.items()}


def run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_create_topics(env)


def create_topics(bootstrap: str, **settings: str) -> tuple[subprocess.CompletedProcess[str], str]:
    """Run the command; returns it and the input topic's name."""
    env = command_env(bootstrap, **settings)
    return run(env), env["SEGSTREAM_CONSUMER_TOPIC"]


def our_topics(bootstrap: str, topic: str) -> list[str]:
    """The run's input and dead-letter topics and its group's state changelog, where present."""
    group = topic.replace("ct-", "ct-group-")
    listed = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10).topics
    return sorted(name for name in listed if name.startswith((topic, group)))


def error_lines(stderr: str) -> list[str]:
    return [
        line["message"]
        for line in map(json.loads, stderr.splitlines())
        if line.get("level") == "ERROR"
    ]


def test_the_defaults_refuse_a_cluster_smaller_than_three_brokers_and_create_nothing(
    kafka_bootstrap: str,
) -> None:
    done, topic = create_topics(kafka_bootstrap)
    assert done.returncode == 2, done.stderr
    [message] = error_lines(done.stderr)
    assert "replication factor 3 needs at least 3 brokers; the cluster has 1" in message
    assert "SEGSTREAM_CONSUMER_TOPIC_REPLICATION_FACTOR=1" in message
    assert our_topics(kafka_bootstrap, topic) == []


def test_a_topic_the_cluster_would_refuse_leaves_the_others_uncreated(
    kafka_bootstrap: str,
) -> None:
    done, topic = create_topics(
        kafka_bootstrap,
        topic_replication_factor="1",
        topic_min_insync_replicas="1",
        dead_letter_topic="not a valid topic name!",
    )
    assert done.returncode == 2, done.stderr
    [message] = error_lines(done.stderr)
    assert "cannot create topic not a valid topic name!" in message
    assert "nothing was created" in message
    assert our_topics(kafka_bootstrap, topic) == []


def test_min_insync_above_the_replication_factor_is_refused_as_a_setting(
    kafka_bootstrap: str,
) -> None:
    done, topic = create_topics(
        kafka_bootstrap, topic_replication_factor="1", topic_min_insync_replicas="2"
    )
    assert done.returncode != 0
    assert "topic_min_insync_replicas" in done.stderr
    assert our_topics(kafka_bootstrap, topic) == []


@pytest.mark.xdist_group("kafka_cluster3")  # one three-node cluster per run
@pytest.mark.slow
def test_the_defaults_on_three_brokers_give_three_replicas_and_min_insync_two(
    kafka_cluster3: LocalKafka,
) -> None:
    bootstrap = kafka_cluster3.bootstrap_servers
    env = command_env(bootstrap)
    done, topic = run(env), env["SEGSTREAM_CONSUMER_TOPIC"]
    assert done.returncode == 0, done.stderr
    admin = AdminClient({"bootstrap.servers": bootstrap})
    metadata = admin.list_topics(timeout=10)
    names = our_topics(bootstrap, topic)
    # input, dead letters, customer-state changelog, and the dead-letter tool's parked and audit
    assert len(names) == 5
    for name in names:
        partitions = metadata.topics[name].partitions
        assert len(partitions) == (1 if name.endswith(".audit") else 3), name
        assert {len(p.replicas) for p in partitions.values()} == {3}
        resource = ConfigResource(ConfigResource.Type.TOPIC, name)
        config = admin.describe_configs([resource])[resource].result(30)
        assert config["min.insync.replicas"].value == "2", name
    # Idempotent: a second run finds everything and changes nothing.
    again = run(env)
    assert again.returncode == 0, again.stderr
    assert our_topics(bootstrap, topic) == names


def test_existing_topics_unlike_the_settings_are_left_alone_and_named_in_a_warning(
    kafka_bootstrap: str,
) -> None:
    # make run's topics (replication factor 1), then the command with production defaults.
    env = command_env(kafka_bootstrap, topic_replication_factor="1", topic_min_insync_replicas="1")
    assert run(env).returncode == 0
    production = {k: v for k, v in env.items() if "REPLICATION" not in k and "INSYNC" not in k}

    again = run(production)

    assert again.returncode == 0, again.stderr
    warnings = [
        line for line in map(json.loads, again.stderr.splitlines()) if line["level"] == "WARNING"
    ]
    dead_letters = env["SEGSTREAM_CONSUMER_DEAD_LETTER_TOPIC"]
    assert sorted(line["topic"] for line in warnings) == sorted(
        [
            env["SEGSTREAM_CONSUMER_TOPIC"],
            dead_letters,
            f"{env['SEGSTREAM_CONSUMER_GROUP_ID']}-customer-state-changelog",
            f"{dead_letters}{PARKED_SUFFIX}",
            f"{dead_letters}{AUDIT_SUFFIX}",
        ]
    )
    for line in warnings:
        assert "replication factor 1, not the" in line["message"]
        assert "and 3 asked for; left as it is" in line["message"]
