"""``segstream-healthcheck`` (deploy/docker/healthcheck.py), the image's health check."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sandbox.kafka.broker import free_port
from support.deploy.images import DEPLOY

pytestmark = pytest.mark.deploy

SCRIPT = DEPLOY / "docker" / "healthcheck.py"


class _Answers(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = self.path.strip("/")
        self.send_response(int(status) if status.isdigit() else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    """Answers GET /<status> with that status, anything else with 404."""
    httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), _Answers)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _check(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=30,
    )


def test_healthy_on_2xx(server: str) -> None:
    assert _check(f"{server}/200").returncode == 0
    assert _check(f"{server}/204").returncode == 0


def test_unhealthy_on_an_error_status(server: str) -> None:
    result = _check(f"{server}/503")
    assert result.returncode == 1
    assert "HTTP 503" in result.stderr


def test_unhealthy_when_nothing_listens() -> None:
    result = _check(f"http://127.0.0.1:{free_port()}/healthz")
    assert result.returncode == 1
    assert "unhealthy" in result.stderr


def test_without_an_argument_it_checks_the_bridge_port_or_the_url_variable(server: str) -> None:
    port = server.rsplit(":", 1)[1]
    # The bridge's /healthz on SEGSTREAM_BRIDGE_PORT: this server answers it 404, so unhealthy,
    # and the message names the URL it checked.
    result = _check(env={"SEGSTREAM_BRIDGE_PORT": port})
    assert result.returncode == 1
    assert f"http://127.0.0.1:{port}/healthz: HTTP 404" in result.stderr
    assert _check(env={"SEGSTREAM_HEALTHCHECK_URL": f"{server}/200"}).returncode == 0
