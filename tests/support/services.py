"""The real processes (bridge, consumer, CRM simulator) started the way a user starts them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from sandbox.errors import SandboxError
from sandbox.kafka.broker import free_port
from sandbox.processes import wait_for_http


class ServiceProcess:
    """``python -m <module> ...`` with its output in a file, stopped with SIGTERM at the end."""

    def __init__(self, name: str, args: list[str], env: Mapping[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_file = log_dir / f"{name}.log"
        self._log = self.log_file.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", *args],
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace")

    def wait_http(self, url: str, timeout: float = 30.0) -> None:
        """Wait for ``url`` to answer 200; on failure stop the process (its log is in the error)."""
        try:
            self._wait_http(url, timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_http(self, url: str, timeout: float) -> None:
        try:
            wait_for_http(url, self.process, timeout)
        except SandboxError as exc:
            raise RuntimeError(f"{self.name}: {exc}:\n{self.log_text()}") from exc

    @property
    def stopped(self) -> bool:
        return self._log.closed

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait (SIGKILL after ``timeout``); the exit code, also of one that exited."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if not self._log.closed:
            self._log.close()
        return self.process.returncode

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()
        self._log.close()


__all__ = ["ServiceProcess", "free_port"]
