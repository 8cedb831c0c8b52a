"""``segstream-sandbox secrets``: the files deploy/compose.yaml mounts."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from sandbox.__main__ import main


def test_writes_a_signing_secret_and_a_token_readable_by_the_containers(tmp_path: Path) -> None:
    directory = tmp_path / "secrets"
    with pytest.raises(SystemExit) as exit_info:
        main(["secrets", "--dir", str(directory)])
    assert exit_info.value.code == 0
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    webhook, token = directory / "webhook-secret", directory / "crm-token"
    assert webhook.read_text().startswith("whsec_")
    assert len(token.read_text().strip()) >= 32
    for path in (webhook, token):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_existing_secrets_are_kept(tmp_path: Path) -> None:
    directory = tmp_path / "secrets"
    with pytest.raises(SystemExit):
        main(["secrets", "--dir", str(directory)])
    first = (directory / "webhook-secret").read_text()
    with pytest.raises(SystemExit):
        main(["secrets", "--dir", str(directory)])
    assert (directory / "webhook-secret").read_text() == first
