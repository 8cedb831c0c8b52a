"""Which client errors stop the consumer, and as what (the exit code and the log line follow)."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError

from consumer.errors import FatalClientError, FencedInstanceError
from consumer.processing.fatal import fatal_error


def test_an_offset_commit_answered_fenced_is_the_fence() -> None:
    # What the commit callback gets first, before librdkafka raises its fatal error.
    error = KafkaError(KafkaError.FENCED_INSTANCE_ID)
    fatal = fatal_error(error, "consumer-a")
    assert isinstance(fatal, FencedInstanceError)
    assert "'consumer-a'" in str(fatal)  # which id is shared, so the other one can be found


def test_librdkafkas_fatal_error_naming_the_fence_is_the_fence() -> None:
    error = KafkaError(
        KafkaError._FATAL,
        "Fatal error: Broker: Static consumer fenced by other consumer with same group.instance.id",
        fatal=True,
    )
    assert isinstance(fatal_error(error, "consumer-a"), FencedInstanceError)


def test_any_other_fatal_error_is_a_fatal_client_error() -> None:
    fatal = fatal_error(KafkaError(KafkaError._FATAL, "Local: Fatal error"), None)
    assert type(fatal) is FatalClientError


@pytest.mark.parametrize(
    "code",
    [KafkaError._PARTITION_EOF, KafkaError.REBALANCE_IN_PROGRESS, KafkaError._TRANSPORT],
)
def test_errors_the_client_recovers_from_are_not_fatal(code: int) -> None:
    assert fatal_error(KafkaError(code), "consumer-a") is None
