"""The bridge as an operator runs it: ``python -m producer_bridge`` with environment variables."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sandbox.kafka.broker import LocalKafka, free_port
from sandbox.secrets import ensure_secret_file, new_webhook_secret
from sandbox.send import signed_headers
from support.bridge import EVENTS, architect
from support.kafka import TopicFactory, read_all
from support.rawhttp import request_head, send_and_drop
from support.services import ServiceProcess
from support.waiting import eventually, eventually_sync

CALLER_NUMBER = "+3247555987"


def bridge_environment(**settings: str) -> dict[str, str]:
    """The test run's environment without any bridge setting it may carry, plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGSTREAM_BRIDGE_")}
    return {
        **env,
        **{f"SEGSTREAM_BRIDGE_{name.upper()}": value for name, value in settings.items()},
    }


def event(customer: str = "C-1") -> dict[str, object]:
    return architect(customer, callerId=CALLER_NUMBER, idempotency_key=None)


def test_without_a_secret_the_bridge_refuses_to_start(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "producer_bridge"],
        env=bridge_environment(port=str(free_port())),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "SEGSTREAM_BRIDGE_ALLOW_UNSIGNED" in result.stderr


def test_an_unreadable_secret_file_stops_the_start(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "producer_bridge"],
        env=bridge_environment(webhook_secrets_file=str(tmp_path / "absent")),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "SEGSTREAM_BRIDGE_WEBHOOK_SECRETS_FILE: cannot read" in result.stderr


def test_invalid_settings_stop_the_start_without_echoing_values(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "producer_bridge"],
        env=bridge_environment(
            shared_secrets="hunter2-secret", shared_secrets_file="/dev/null", port="99999"
        ),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "port" in result.stderr
    assert "hunter2-secret" not in result.stderr


@pytest.fixture
def started(run_dir: Path) -> Iterator[list[ServiceProcess]]:
    processes: list[ServiceProcess] = []
    try:
        yield processes
    finally:
        for process in processes:
            process.stop()


def start_bridge(
    started: list[ServiceProcess], run_dir: Path, **settings: str
) -> tuple[ServiceProcess, str]:
    port = free_port()
    bridge = ServiceProcess(
        f"bridge-{port}",
        ["producer_bridge"],
        bridge_environment(port=str(port), **settings),
        run_dir,
    )
    started.append(bridge)
    url = f"http://127.0.0.1:{port}"
    bridge.wait_http(url + "/healthz")
    return bridge, url


async def post(url: str, body: str, headers: dict[str, str]) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url + EVENTS, data=body, headers=headers) as response,
    ):
        return response.status


@pytest.mark.kafka
async def test_the_development_flag_starts_a_bridge_that_takes_unsigned_events(
    kafka_bootstrap: str, topics: TopicFactory, run_dir: Path, started: list[ServiceProcess]
) -> None:
    topic = topics.create("unsigned")
    bridge, url = start_bridge(
        started,
        run_dir,
        kafka_bootstrap_servers=kafka_bootstrap,
        topic=topic,
        allow_unsigned="true",
    )
    status = await post(url, json.dumps(event()), {"Content-Type": "application/json"})
    assert status == 202
    assert len(read_all(kafka_bootstrap, topic)) == 1
    assert "accepting unauthenticated requests" in bridge.log_text()


@pytest.mark.kafka
async def test_secrets_and_caller_numbers_never_reach_the_log(
    kafka_bootstrap: str, topics: TopicFactory, run_dir: Path, started: list[ServiceProcess]
) -> None:
    topic = topics.create("secrets")
    secret_file = run_dir / "webhook-secret"
    secret = ensure_secret_file(secret_file, new_webhook_secret)
    shared = f"shared-{uuid.uuid4().hex}"
    bridge, url = start_bridge(
        started,
        run_dir,
        kafka_bootstrap_servers=kafka_bootstrap,
        topic=topic,
        webhook_secrets_file=str(secret_file),
        shared_secrets=shared,
        log_level="DEBUG",
    )
    body = json.dumps(event())
    plain = {"Content-Type": "application/json"}
    assert await post(url, body, signed_headers(secret, body)) == 202
    assert await post(url, body, {**plain, "X-Segstream-Token": shared}) == 202
    assert await post(url, body, {**plain, "X-Segstream-Token": shared[:-1]}) == 401
    assert await post(url, body, signed_headers(new_webhook_secret(), body)) == 401
    bridge.stop()
    log = bridge.log_text()
    assert '"event accepted"' in log
    for forbidden in (secret, secret.removeprefix("whsec_"), shared, shared[:-1], CALLER_NUMBER):
        assert forbidden not in log


def port_refuses(url: str) -> bool:
    port = int(url.rsplit(":", 1)[1])
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


async def in_flight(session: aiohttp.ClientSession, url: str) -> float:
    async with session.get(url + "/metrics") as response:
        for line in (await response.text()).splitlines():
            if line.startswith("segstream_bridge_in_flight_requests "):
                return float(line.split()[1])
    return 0.0


@pytest.mark.kafka
@pytest.mark.slow
async def test_sigterm_stops_accepting_finishes_in_flight_requests_flushes_and_exits_0(
    controllable_kafka: LocalKafka, run_dir: Path, started: list[ServiceProcess]
) -> None:
    topic = TopicFactory(controllable_kafka.bootstrap_servers).create("shutdown")
    secret_file = run_dir / "webhook-secret"
    secret = ensure_secret_file(secret_file, new_webhook_secret)
    bridge, url = start_bridge(
        started,
        run_dir,
        kafka_bootstrap_servers=controllable_kafka.bootstrap_servers,
        topic=topic,
        webhook_secrets_file=str(secret_file),
    )
    warm = json.dumps(event())
    assert await post(url, warm, signed_headers(secret, warm)) == 202

    bodies = [json.dumps(event(f"C-{i}")) for i in range(5)]
    controllable_kafka.pause_node(0)  # hold the requests in flight: no acknowledgement comes
    try:
        requests = [
            asyncio.create_task(post(url, body, signed_headers(secret, body))) for body in bodies
        ]
        async with aiohttp.ClientSession() as session:

            async def all_in_flight() -> bool:
                return await in_flight(session, url) >= len(bodies) + 1  # + this /metrics

            await eventually(all_in_flight, timeout=10)
        bridge.process.terminate()
        eventually_sync(lambda: port_refuses(url), timeout=5)  # stops accepting at once
        assert bridge.process.poll() is None  # ...but waits for its in-flight requests
    finally:
        controllable_kafka.resume_node(0)
    statuses = await asyncio.gather(*requests)
    assert statuses == [202] * len(bodies)
    assert bridge.process.wait(timeout=30) == 0
    stored = {record.value() for record in read_all(controllable_kafka.bootstrap_servers, topic)}
    assert len(stored) == len(bodies) + 1
    assert "producer flushed; bridge stopped" in bridge.log_text()


def test_a_stopped_process_exits_promptly_when_idle(run_dir: Path) -> None:
    """Idle shutdown does not wait out the in-flight grace period."""
    port = free_port()
    env = bridge_environment(
        port=str(port), allow_unsigned="true", kafka_bootstrap_servers=f"127.0.0.1:{free_port()}"
    )
    bridge = ServiceProcess("idle-bridge", ["producer_bridge"], env, run_dir)
    try:
        bridge.wait_http(f"http://127.0.0.1:{port}/healthz")
        started_at = time.monotonic()
        assert bridge.stop() == 0
        assert time.monotonic() - started_at < 5
    finally:
        bridge.stop()


def log_lines(bridge: ServiceProcess) -> list[dict[str, Any]]:
    """Every line the process wrote, each required to be one JSON object."""
    return [json.loads(line) for line in bridge.log_text().splitlines() if line.strip()]


@pytest.mark.kafka
async def test_requests_that_break_off_leave_one_quiet_line_and_no_traceback(
    kafka_bootstrap: str, topics: TopicFactory, run_dir: Path, started: list[ServiceProcess]
) -> None:
    topic = topics.create("broken-off")
    secret_file = run_dir / "webhook-secret"
    secret = ensure_secret_file(secret_file, new_webhook_secret)
    bridge, url = start_bridge(
        started,
        run_dir,
        kafka_bootstrap_servers=kafka_bootstrap,
        topic=topic,
        webhook_secrets_file=str(secret_file),
    )
    body = json.dumps(event())
    signature = signed_headers(secret, body)
    head = request_head(EVENTS, {**signature, "Content-Length": str(len(body))})
    # A client that goes away mid-body, a body that is not the gzip it claims (read by the
    # handler, then drained by aiohttp), and a coding aiohttp's parser refuses by itself.
    await send_and_drop(url, head + body[:30].encode())
    assert await post(url, body, {**signature, "Content-Encoding": "gzip"}) == 400
    assert await post(url, body, {**signature, "Content-Encoding": "br"}) == 400

    def abandoned() -> bool:
        return any(line["message"] == "request abandoned" for line in log_lines(bridge))

    eventually_sync(abandoned, timeout=10)
    assert await post(url, body, signed_headers(secret, body)) == 202  # and it goes on serving
    bridge.stop()
    lines = log_lines(bridge)
    assert [line for line in lines if line["level"] in ("ERROR", "CRITICAL")] == []
    assert [line for line in lines if "exc_info" in line] == []


@pytest.mark.kafka
def test_every_line_is_json_librdkafkas_own_too(run_dir: Path) -> None:
    port = free_port()
    nowhere = f"127.0.0.1:{free_port()}"  # librdkafka logs its failed connects
    env = bridge_environment(port=str(port), allow_unsigned="true", kafka_bootstrap_servers=nowhere)
    bridge = ServiceProcess("json-bridge", ["producer_bridge"], env, run_dir)
    try:
        bridge.wait_http(f"http://127.0.0.1:{port}/healthz")
        eventually_sync(
            lambda: any(line["logger"].endswith(".kafka") for line in log_lines(bridge)),
            timeout=20,
        )
    finally:
        assert bridge.stop() == 0
    librdkafka = [line for line in log_lines(bridge) if line["logger"].endswith(".kafka")]
    assert any("Connect to" in line["message"] for line in librdkafka), librdkafka
