"""A real Prometheus server (Debian's package) on 127.0.0.1, scraping the services under test."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from sandbox.errors import SandboxError
from sandbox.kafka.broker import free_port
from sandbox.processes import wait_for_http


class PrometheusError(Exception):
    """The HTTP API answered ``status: error`` (a bad query, an evaluation failure)."""


class PrometheusServer:
    """``prometheus`` scraping ``jobs`` ({job: [host:port, ...]}) every second and evaluating
    ``rule_files`` every second; its log is ``work_dir/prometheus.log``."""

    def __init__(self, work_dir: Path, jobs: dict[str, list[str]], rule_files: list[Path]) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            raise SandboxError("prometheus is not installed: run deploy/check/install-tools.sh")
        work_dir.mkdir(parents=True, exist_ok=True)
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(path) for path in rule_files],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": targets}]}
                for job, targets in jobs.items()
            ],
        }
        config_file = work_dir / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_file = work_dir / "prometheus.log"
        self._log = self.log_file.open("wb")
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={config_file}",
                f"--storage.tsdb.path={work_dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_http(self.url + "/-/ready", self.process, timeout=60)
        except SandboxError as exc:
            self.stop()
            raise SandboxError(f"prometheus: {exc}:\n{self.log_file.read_text()[-4000:]}") from exc

    def api(self, path: str, **params: str) -> Any:
        """``GET /api/v1/<path>``: its ``data``; :class:`PrometheusError` with the API's error."""
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback
                body = json.load(response)
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read() or b"{}")
        if body.get("status") != "success":
            raise PrometheusError(f"{body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query's result (a vector's samples, a scalar as one item)."""
        data = self.api("query", query=promql)
        result = data["result"]
        return list(result) if isinstance(result, list) else [{"value": result}]

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode
