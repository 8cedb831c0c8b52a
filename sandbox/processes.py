"""Child processes with readable, prefixed output, stopped in order (used by ``make run``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Mapping, Sequence
from typing import IO, Any, Final

from sandbox.errors import SandboxError

# SIGTERM first: every service drains and commits on it. A service still up after this long is
# stuck, and SIGKILL is the only way to honour Ctrl-C.
STOP_GRACE_S: Final = 15.0
_COLOURS: Final = ("\033[36m", "\033[35m", "\033[33m", "\033[32m", "\033[34m")
_RESET: Final = "\033[0m"
_QUIET_KEYS: Final = frozenset({"ts", "level", "logger", "message", "service", "taskName"})


def render(line: str) -> str:
    """A JSON log line as ``HH:MM:SS LEVEL message key=value ...``; anything else unchanged."""
    try:
        record = json.loads(line)
    except ValueError:
        return line
    if not isinstance(record, dict):
        return line
    clock = str(record.get("ts", ""))[11:19]
    fields = " ".join(f"{k}={v}" for k, v in record.items() if k not in _QUIET_KEYS)
    return f"{clock} {record.get('level', ''):<7} {record.get('message', '')} {fields}".rstrip()


class Service:
    def __init__(
        self, name: str, argv: Sequence[str], env: Mapping[str, str], colour_index: int
    ) -> None:
        self.name = name
        self._argv = list(argv)
        self._env = dict(env)
        self._colour = _COLOURS[colour_index % len(_COLOURS)] if sys.stdout.isatty() else ""
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            self._argv,
            env={**os.environ, **self._env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,
        )
        threading.Thread(target=self._pump, args=(self.process.stdout,), daemon=True).start()

    def _pump(self, stream: IO[str] | None) -> None:
        if stream is None:
            return
        reset = _RESET if self._colour else ""
        for line in stream:
            print(f"{self._colour}{self.name:<9}|{reset} {render(line.rstrip())}", flush=True)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def wait_for_http(
    url: str, process: subprocess.Popen[Any], timeout: float, interval: float = 0.05
) -> None:
    """Return once ``url`` answers 200; raise :class:`SandboxError` if ``process`` exits first or
    ``timeout`` seconds pass (the caller adds where its log is)."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise SandboxError(f"exited with {process.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - loopback
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SandboxError(f"{url} did not answer 200 within {timeout:.0f}s")
        time.sleep(interval)
