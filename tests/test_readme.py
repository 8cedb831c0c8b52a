"""The README's promises that code can check: the two commands, and every setting documented."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from consumer.dlq.settings import DlqSettings
from consumer.settings import ConsumerSettings
from producer_bridge.settings import BridgeSettings
from sandbox.crm.settings import CrmSimulatorSettings

README = (Path(__file__).parent.parent / "README.md").read_text()
UNDOCUMENTED = {"random_seed", "log_level"}  # simulator knobs for tests, not for operators


def test_readme_opens_with_the_run_and_test_commands() -> None:
    opening = "\n".join(README.splitlines()[:8])
    assert "make run" in opening
    assert "make test" in opening


@pytest.mark.parametrize(
    "settings", [BridgeSettings, ConsumerSettings, CrmSimulatorSettings, DlqSettings]
)
def test_every_setting_has_its_environment_variable_in_the_readme(
    settings: type[BaseSettings],
) -> None:
    prefix = settings.model_config.get("env_prefix", "")
    missing = [
        f"{prefix}{name}".upper()
        for name in settings.model_fields
        if name not in UNDOCUMENTED and f"`{prefix}{name}`".upper() not in README.upper()
    ]
    assert missing == []
