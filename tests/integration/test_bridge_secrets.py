"""Secrets as an operator manages them, with the real process: weak ones refused at start, and a
rotated secrets file (as Kubernetes updates a mounted Secret in place) in effect without a
restart: the new secret accepted, the old one refused."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import pytest

from sandbox.kafka.broker import free_port
from sandbox.secrets import new_webhook_secret
from sandbox.send import signed_headers
from support.bridge import EVENTS, architect
from support.kafka import TopicFactory, read_all
from support.services import ServiceProcess
from support.waiting import eventually

JSON = {"Content-Type": "application/json"}


def environment(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGSTREAM_BRIDGE_")}
    return {**env, **{f"SEGSTREAM_BRIDGE_{k.upper()}": v for k, v in settings.items()}}


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"webhook_secrets": "whsec_AA"}, "SEGSTREAM_BRIDGE_WEBHOOK_SECRETS:"),
        ({"webhook_secrets_file": "whsec_AA"}, "SEGSTREAM_BRIDGE_WEBHOOK_SECRETS_FILE:"),
        ({"shared_secrets": "hunter2-hunter2"}, "SEGSTREAM_BRIDGE_SHARED_SECRETS:"),
    ],
    ids=["webhook-secret", "webhook-secret-file", "shared-secret"],
)
def test_a_weak_secret_stops_the_start_with_exit_code_2_naming_the_setting(
    tmp_path: Path, settings: dict[str, str], named: str
) -> None:
    if "webhook_secrets_file" in settings:
        (tmp_path / "secret").write_text(settings["webhook_secrets_file"])
        settings = {"webhook_secrets_file": str(tmp_path / "secret")}
    result = subprocess.run(
        [sys.executable, "-m", "producer_bridge"],
        env=environment(port=str(free_port()), **settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    [line] = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    assert named in line["message"]
    for value in ("whsec_AA", "hunter2"):
        assert value not in result.stderr


def rotate(path: Path, text: str) -> None:
    """Replace the file atomically, as the kubelet swaps a mounted Secret's files."""
    staged = path.with_name(path.name + ".new")
    staged.write_text(text)
    os.replace(staged, path)


Sign = Callable[[str, str], dict[str, str]]


def by_signature(secret: str, body: str) -> dict[str, str]:
    return signed_headers(secret, body)


def by_shared_secret(secret: str, body: str) -> dict[str, str]:
    return {**JSON, "X-Segstream-Token": secret}


@pytest.fixture
def bridges(run_dir: Path) -> Iterator[list[ServiceProcess]]:
    started: list[ServiceProcess] = []
    yield started
    for bridge in started:
        assert bridge.stop() == 0


def start(
    bridges: list[ServiceProcess], run_dir: Path, secret_file: Path, mode: str, **settings: str
) -> str:
    port = free_port()
    setting = "webhook_secrets_file" if mode == "signature" else "shared_secrets_file"
    bridge = ServiceProcess(
        f"bridge-{port}",
        ["producer_bridge"],
        environment(port=str(port), **{setting: str(secret_file)}, **settings),
        run_dir,
    )
    bridges.append(bridge)
    url = f"http://127.0.0.1:{port}"
    bridge.wait_http(url + "/readyz")
    return url


async def post(url: str, secret: str, sign: Sign) -> int:
    body = json.dumps(architect())
    async with (
        aiohttp.ClientSession() as session,
        session.post(url + EVENTS, data=body, headers=sign(secret, body)) as response,
    ):
        return response.status


MODES = {
    "signature": (new_webhook_secret, by_signature),
    "shared-secret": (lambda: secrets.token_urlsafe(32), by_shared_secret),
}


@pytest.mark.kafka
@pytest.mark.parametrize("mode", MODES.keys())
async def test_a_rotated_secrets_file_is_used_at_once_by_the_first_request_with_the_new_secret(
    kafka_bootstrap: str,
    topics: TopicFactory,
    run_dir: Path,
    bridges: list[ServiceProcess],
    mode: str,
) -> None:
    new_secret, sign = MODES[mode]
    old, new = new_secret(), new_secret()
    secret_file = run_dir / "secrets"
    secret_file.write_text(old + "\n")
    topic = topics.create("rotation")
    # A schedule far away: only the failed check of the first new-secret request can re-read.
    url = start(
        bridges,
        run_dir,
        secret_file,
        mode,
        kafka_bootstrap_servers=kafka_bootstrap,
        topic=topic,
        secrets_reload_interval_s="3600",
    )
    pid = bridges[0].process.pid
    assert await post(url, old, sign) == 202

    rotate(secret_file, new + "\n")
    assert await post(url, new, sign) == 202
    assert await post(url, old, sign) == 401
    assert await post(url, new, sign) == 202
    assert bridges[0].process.pid == pid  # the same process, never restarted
    assert bridges[0].process.poll() is None
    assert len(read_all(kafka_bootstrap, topic)) == 3
    log = bridges[0].log_text()
    assert "secrets reloaded" in log
    assert old not in log
    assert new not in log


@pytest.mark.kafka
@pytest.mark.parametrize("mode", MODES.keys())
async def test_a_revoked_secret_stops_working_on_the_schedule_without_any_failed_request(
    kafka_bootstrap: str,
    topics: TopicFactory,
    run_dir: Path,
    bridges: list[ServiceProcess],
    mode: str,
) -> None:
    new_secret, sign = MODES[mode]
    old, new = new_secret(), new_secret()
    secret_file = run_dir / "secrets"
    secret_file.write_text(f"{old} {new}\n")  # during a rotation both are active
    url = start(
        bridges,
        run_dir,
        secret_file,
        mode,
        kafka_bootstrap_servers=kafka_bootstrap,
        topic=topics.create("revocation"),
        secrets_reload_interval_s="1",
    )
    assert await post(url, old, sign) == 202
    rotate(secret_file, new + "\n")  # the old secret is revoked

    # Requests with the old secret pass until the scheduled re-read; the first 401 can only come
    # from it (a failed check would have needed a re-read first).
    async def refused() -> bool:
        return await post(url, old, sign) == 401

    await eventually(refused, timeout=30, interval=0.2)
    assert await post(url, new, sign) == 202
