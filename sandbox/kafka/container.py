"""The other way to a real broker: a testcontainers Kafka container, where a Docker engine answers.

No Docker engine runs on the development machines this project grew up on, so the JVM path in
:mod:`sandbox.kafka.broker` is the default; this one is for laptops and CI runners with Docker.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

# testcontainers' Kafka module drives Confluent's image (its start script expects it); 7.6 is
# the newest it knows how to run in KRaft mode.
KAFKA_IMAGE: Final = "confluentinc/cp-kafka:7.6.0"


def docker_available() -> bool:
    try:
        import docker  # noqa: PLC0415 - optional: only present with the testcontainers extra

        docker.from_env(timeout=2).ping()
    except Exception:
        return False
    return True


@contextmanager
def kafka_container() -> Iterator[str]:
    """Yield the bootstrap servers of a single-node KRaft broker in a container."""
    from testcontainers.community.kafka import KafkaContainer  # noqa: PLC0415 - needs Docker at import

    with KafkaContainer(KAFKA_IMAGE).with_kraft() as container:
        yield str(container.get_bootstrap_server())
