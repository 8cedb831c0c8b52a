"""What one simulator instance knows, stored on its aiohttp application."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Any, Final

from aiohttp import web

from sandbox.crm.faults import Faults
from sandbox.crm.ratelimit import TokenBucket
from sandbox.crm.settings import CrmSimulatorSettings
from sandbox.crm.store import CrmStore


@dataclass
class SimulatorState:
    settings: CrmSimulatorSettings
    token: bytes = field(repr=False)
    faults: Faults
    bucket: TokenBucket
    store: CrmStore
    rng: random.Random
    # Set on shutdown so requests hanging in a simulated timeout let the server stop promptly.
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    # Executions still running after their client left (see sandbox/crm/idempotency.py).
    executions: set[asyncio.Future[tuple[int, dict[str, Any]]]] = field(default_factory=set)


STATE: Final = web.AppKey("crm_simulator_state", SimulatorState)
