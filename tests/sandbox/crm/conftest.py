"""Simulators for the CRM simulator's own tests: real servers on free ports, no ambient settings."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from support.crm_app import Client, StartCrm, crm_apps


@pytest.fixture(autouse=True)
def _no_ambient_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's SEGSTREAM_CRM_SIM_* variables must not change what these tests see."""
    for name in list(os.environ):
        if name.startswith("SEGSTREAM_CRM_SIM_"):
            monkeypatch.delenv(name)


@pytest.fixture
async def start_crm() -> AsyncIterator[StartCrm]:
    async with crm_apps() as start:
        yield start


@pytest.fixture
async def crm(start_crm: StartCrm) -> Client:
    return await start_crm()
