"""``python -m sandbox.crm``: serve the CRM simulator configured by ``SEGSTREAM_CRM_SIM_*``."""

from __future__ import annotations

import sys

from sandbox.crm.app import run
from sandbox.crm.settings import CrmSimulatorSettings, CrmTokenError


def main() -> int:
    try:
        settings = CrmSimulatorSettings()
        settings.bearer_token()
    except CrmTokenError as exc:
        print(f"crm simulator: {exc}", file=sys.stderr)
        return 2
    run(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
