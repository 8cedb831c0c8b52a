"""The CRM token followed through rotations of its file: on a schedule and on a 401."""

from __future__ import annotations

from pathlib import Path

import pytest

from consumer.errors import ConfigurationError
from consumer.sink.token import BearerToken
from support.clock import FakeTime


def token_file(tmp_path: Path, value: str) -> Path:
    path = tmp_path / "crm-token"
    path.write_text(value + "\n")
    return path


def test_a_rotated_file_is_read_on_the_schedule(tmp_path: Path) -> None:
    clock = FakeTime()
    path = token_file(tmp_path, "old")
    token = BearerToken(path=path, refresh_s=60.0, clock=clock)
    path.write_text("new")
    clock.now += 59.0
    assert token.current() == "old"
    clock.now += 1.0
    assert token.current() == "new"


def test_a_401_reads_the_file_again_and_tells_whether_to_try_again(tmp_path: Path) -> None:
    clock = FakeTime()
    path = token_file(tmp_path, "old")
    token = BearerToken(path=path, refresh_s=3600.0, clock=clock)
    clock.now += 5.0
    assert token.refused("old") is False  # the file still holds it: the token was revoked
    path.write_text("new")
    assert token.refused("old") is False  # one read per second at most, whatever the storm
    clock.now += 1.0
    assert token.refused("old") is True
    assert token.current() == "new"
    assert token.refused("old") is True  # sent before the change: the new one is in use


def test_an_unreadable_file_at_a_refresh_keeps_the_token_in_use(tmp_path: Path) -> None:
    clock = FakeTime()
    path = token_file(tmp_path, "old")
    token = BearerToken(path=path, refresh_s=1.0, clock=clock)
    path.unlink()  # the symlink swap of a Kubernetes secret update, caught half-way
    clock.now += 2.0
    assert token.current() == "old"


def test_a_token_given_as_a_value_never_changes() -> None:
    token = BearerToken("static")
    assert token.current() == "static"
    assert token.refused("static") is False


@pytest.mark.parametrize("content", ["", "  \n"])
def test_an_empty_or_missing_file_at_start_is_a_configuration_error(
    tmp_path: Path, content: str
) -> None:
    with pytest.raises(ConfigurationError, match="empty"):
        BearerToken(path=token_file(tmp_path, content))
    with pytest.raises(ConfigurationError, match="cannot read"):
        BearerToken(path=tmp_path / "absent")
