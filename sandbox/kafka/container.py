"""The other way to a real broker: Apache Kafka in a container, where a Docker engine answers.

testcontainers runs the image; the broker is configured the official ``apache/kafka`` image's
way (``KAFKA_*`` variables become server.properties, ``CLUSTER_ID`` formats the storage), so the
image can be the official one of the pinned version, or any image that follows the same
convention: ``$KAFKA_IMAGE`` (deploy/kafka builds one from the Maven jars where no registry is
reachable). The container shares the host's network and listens on 127.0.0.1 only, on ports
picked free, so it needs no port publishing and no Docker network, and parallel runs coexist.
"""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from sandbox.kafka.broker import START_TIMEOUT_S, free_port, wait_for_brokers
from sandbox.kafka.jars import KAFKA_VERSION

DEFAULT_KAFKA_IMAGE: Final = f"apache/kafka:{KAFKA_VERSION}"


def kafka_image() -> str:
    """``$KAFKA_IMAGE``, else the official image of the version the jars are pinned to."""
    return os.environ.get("KAFKA_IMAGE") or DEFAULT_KAFKA_IMAGE


def docker_available() -> bool:
    try:
        import docker  # noqa: PLC0415 - optional: only present with the testcontainers extra

        docker.from_env(timeout=2).ping()
    except Exception:
        return False
    return True


def kraft_environment(port: int, controller_port: int) -> dict[str, str]:
    """One combined broker+controller node on 127.0.0.1, in the official image's variables."""
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    return {
        "CLUSTER_ID": cluster_id,
        "KAFKA_NODE_ID": "1",
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_LISTENERS": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://127.0.0.1:{port}",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_INTER_BROKER_LISTENER_NAME": "PLAINTEXT",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": f"1@127.0.0.1:{controller_port}",
        "KAFKA_LOG_DIRS": "/var/lib/kafka/data",  # a volume in both images
        # As in sandbox/kafka/broker.py: explicit topics only, small internal topics, no
        # initial rebalance delay (a group per test).
        "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "false",
        "KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS": "6",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR": "1",
        "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
    }


@contextmanager
def kafka_container(image: str | None = None, timeout: float = START_TIMEOUT_S) -> Iterator[str]:
    """Yield the bootstrap servers of a single-node KRaft broker in a container.

    The container is removed on exit. Raises :class:`sandbox.errors.BrokerStartError` (with
    the container's log) when the broker exits or is not ready within ``timeout`` seconds.
    """
    from testcontainers.core.container import DockerContainer  # noqa: PLC0415 - needs Docker

    port, controller_port = free_port(), free_port()
    container = DockerContainer(
        image or kafka_image(), env=kraft_environment(port, controller_port), network_mode="host"
    )
    with container:
        wrapped = container.get_wrapped_container()

        def logs() -> str:
            return str(wrapped.logs(tail=60).decode(errors="replace"))

        def exited() -> str | None:
            wrapped.reload()
            if wrapped.status in ("exited", "dead"):
                return f"the Kafka container exited:\n{logs()}"
            return None

        bootstrap = f"127.0.0.1:{port}"
        wait_for_brokers(bootstrap, {1}, timeout, exited=exited, logs=logs)
        yield bootstrap
