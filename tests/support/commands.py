"""The project's console commands run as an operator runs them, in a process of their own."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path


def run_create_topics(
    env: Mapping[str, str], *, cwd: Path | None = None, timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """``segstream-consumer create-topics`` with exactly ``env`` (merge ``os.environ`` in when
    the caller's environment should count); output captured, the exit code not checked."""
    return subprocess.run(
        [sys.executable, "-m", "consumer", "create-topics"],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
