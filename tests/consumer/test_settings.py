"""Settings that cannot work are refused at start, naming the fields."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from consumer.settings import ConsumerSettings
from consumer.sink.http import REQUESTS_PER_WRITE


def settings(**values: object) -> ConsumerSettings:
    return ConsumerSettings(_env_file=None, **values)  # type: ignore[call-arg]


def test_by_default_the_revoke_drain_outlasts_the_longest_write() -> None:
    """Issue 8 §7: the 10 s drain was shorter than a write's 3 x 5 s worst case."""
    default = settings()
    assert default.longest_write_s == REQUESTS_PER_WRITE * default.crm_timeout_s
    assert default.effective_revoke_drain_s > default.longest_write_s
    assert default.shutdown_drain_s >= default.longest_write_s


def test_the_derived_drain_follows_the_crm_timeout() -> None:
    assert settings(crm_timeout_s=2.0).effective_revoke_drain_s == REQUESTS_PER_WRITE * 2.0 + 1.0
    assert settings(crm_timeout_s=2.0, revoke_drain_s=30.0).effective_revoke_drain_s == 30.0


def test_a_revoke_drain_shorter_than_a_write_is_refused_naming_both_settings() -> None:
    with pytest.raises(ValidationError) as refused:
        settings(crm_timeout_s=5.0, revoke_drain_s=10.0)
    message = str(refused.value)
    assert "revoke_drain_s" in message
    assert "crm_timeout_s" in message


def test_a_revoke_drain_past_the_rebalance_timeout_is_refused() -> None:
    with pytest.raises(ValidationError, match="revoke_drain_s"):
        settings(revoke_drain_s=400.0)


def test_a_validation_error_never_quotes_the_token() -> None:
    with pytest.raises(ValidationError) as refused:
        settings(crm_token="tok-secret-123456", crm_token_file="/run/token")
    assert "tok-sec" not in str(refused.value)
