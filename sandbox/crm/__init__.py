"""A CRM simulator: the seed's generic REST CRM, strict, rate-limited and failing on request.

The consumer writes to it in tests, benchmarks and ``make run``. It checks what a real CRM checks
(bearer token, content type, payload shape, Idempotency-Key reuse), throttles with a token bucket
(429 + Retry-After), injects latency, errors, timeouts and outages, and keeps a write log that
tests read through ``/_sim/*`` to verify order, loss and duplicates.

``create_app(settings)`` builds the aiohttp application; ``run(settings)`` serves it
(``python -m sandbox.crm``).
"""

from sandbox.crm.app import create_app, run, serve
from sandbox.crm.faults import Faults
from sandbox.crm.settings import CrmSimulatorSettings, CrmTokenError

__all__ = ["CrmSimulatorSettings", "CrmTokenError", "Faults", "create_app", "run", "serve"]
