"""Settings, serving, shutdown and logs of the simulator process."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr, ValidationError

from sandbox.crm import CrmSimulatorSettings, CrmTokenError, create_app, serve
from sandbox.crm.logs import json_handler
from support.crm_app import (
    AUTH,
    TOKEN,
    Client,
    StartCrm,
    assert_error,
    update_body,
)

ISO_UTC_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


# -- settings ----------------------------------------------------------------------------------


async def test_settings_from_env_with_token_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    token_file = tmp_path / "crm-token"
    token_file.write_text("file-token-42\n", encoding="utf-8")
    monkeypatch.setenv("SEGSTREAM_CRM_SIM_TOKEN_FILE", str(token_file))
    monkeypatch.setenv("SEGSTREAM_CRM_SIM_HOST", "localhost")
    monkeypatch.setenv("SEGSTREAM_CRM_SIM_PORT", "9191")
    monkeypatch.setenv("SEGSTREAM_CRM_SIM_RATE_LIMIT_PER_S", "5")
    monkeypatch.setenv("SEGSTREAM_CRM_SIM_RATE_LIMIT_BURST", "7")
    monkeypatch.setenv("SEGSTREAM_CRM_SIM_LATENCY_MS_MAX", "3")
    monkeypatch.setenv("SEGSTREAM_CRM_SIM_AUTO_CREATE", "true")
    monkeypatch.setenv("SEGSTREAM_CRM_SIM_REJECT_CUSTOMER_PREFIX", "BAD-")
    monkeypatch.setenv("SEGSTREAM_CRM_SIM_IDEMPOTENCY_RESULTS", "successes")
    monkeypatch.setenv("SEGSTREAM_CRM_SIM_RETRY_AFTER_FORMAT", "http-date")
    monkeypatch.setenv("SEGSTREAM_CRM_SIM_RATE_LIMIT_HEADERS", "x-ratelimit-epoch")
    monkeypatch.setenv("SEGSTREAM_CRM_SIM_REDIRECT_STATUS", "308")
    monkeypatch.setenv("SEGSTREAM_CRM_SIM_ERROR_RETRY_AFTER_S", "7")

    settings = CrmSimulatorSettings()
    assert settings.bearer_token() == "file-token-42"
    assert (settings.host, settings.port) == ("localhost", 9191)
    assert (settings.rate_limit_per_s, settings.rate_limit_burst) == (5.0, 7)
    assert settings.latency_ms_max == 3.0
    assert settings.auto_create is True
    assert settings.reject_customer_prefix == "BAD-"
    assert settings.error_rate == 0.0
    assert settings.hang_s == 30.0
    dialects = settings.initial_faults()
    assert (dialects.idempotency_results, dialects.retry_after_format) == ("successes", "http-date")
    assert (dialects.rate_limit_headers, dialects.redirect_status) == ("x-ratelimit-epoch", 308)
    assert dialects.error_retry_after_s == 7

    settings = settings.model_copy(update={"redirect_status": None})
    client: Client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    try:
        wrong = await client.post("/v1/customers", json={"id": "C-1"}, headers=AUTH)
        assert wrong.status == 401
        right = await client.post(
            "/v1/customers/update",
            json=update_body("C-1"),
            headers={"Authorization": "Bearer file-token-42"},
        )
        assert right.status == 200  # auto_create from the environment
    finally:
        await client.close()


def test_token_from_env_is_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGSTREAM_CRM_SIM_TOKEN", "env-token-99")
    settings = CrmSimulatorSettings()
    assert settings.bearer_token() == "env-token-99"
    assert "env-token-99" not in repr(settings)
    assert "env-token-99" not in str(settings.model_dump())


def test_missing_token_is_a_clear_error() -> None:
    settings = CrmSimulatorSettings()
    with pytest.raises(CrmTokenError, match="SEGSTREAM_CRM_SIM_TOKEN"):
        settings.bearer_token()
    with pytest.raises(CrmTokenError):
        create_app(settings)


def test_ambiguous_unreadable_or_empty_token_is_an_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("  \n", encoding="utf-8")
    with pytest.raises(CrmTokenError, match="empty"):
        CrmSimulatorSettings(token_file=empty).bearer_token()
    with pytest.raises(CrmTokenError, match="cannot read"):
        CrmSimulatorSettings(token_file=tmp_path / "absent").bearer_token()
    with pytest.raises(CrmTokenError, match="not both"):
        CrmSimulatorSettings(token=SecretStr("a"), token_file=empty).bearer_token()


@pytest.mark.parametrize(
    "overrides",
    [
        {"error_rate": 1.5},
        {"timeout_rate": -1},
        {"latency_ms_min": 10, "latency_ms_max": 5},
        {"error_rate": 0.7, "timeout_rate": 0.7},
        {"rate_limit_burst": 0},
        {"port": 70000},
        {"redirect_status": 304},
        {"idempotency_results": "all"},
    ],
)
def test_invalid_settings_are_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        CrmSimulatorSettings(token=SecretStr("t"), **overrides)


# -- serving and logs --------------------------------------------------------------------------


async def test_serve_logs_its_url_never_its_token(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="sandbox.crm")
    settings = CrmSimulatorSettings(token=SecretStr(TOKEN), port=0)
    stop = asyncio.Event()
    server = asyncio.create_task(serve(settings, stop=stop))
    try:
        deadline = time.monotonic() + 10.0
        while not _records(caplog, "crm simulator listening"):
            assert time.monotonic() < deadline, "the simulator did not log its start"
            assert not server.done(), server
            await asyncio.sleep(0.01)
        url = _records(caplog, "crm simulator listening")[0].__dict__["url"]
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{url}/healthz") as health:
                assert health.status == 200
            async with session.post(
                f"{url}/v1/customers", json={"id": "C-1"}, headers=AUTH
            ) as created:
                assert created.status == 201
    finally:
        stop.set()
        await asyncio.wait_for(server, timeout=10.0)
    for record in caplog.records:
        assert TOKEN not in record.getMessage()
        assert TOKEN not in json.dumps(record.__dict__, default=str)


def _records(caplog: pytest.LogCaptureFixture, message: str) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.getMessage() == message]


async def test_shutdown_ends_hanging_requests_promptly(start_crm: StartCrm) -> None:
    crm = await start_crm(timeout_rate=1.0, hang_s=30)
    runner = crm.server.runner
    assert runner is not None
    assert runner.server is not None
    http_server = runner.server
    hanging = asyncio.create_task(crm.post("/v1/customers", json={"id": "C-1"}, headers=AUTH))
    deadline = time.monotonic() + 10.0
    while http_server.requests_count < 1:
        assert time.monotonic() < deadline, "the request never reached the simulator"
        await asyncio.sleep(0.01)

    started = time.monotonic()
    await crm.server.close()
    assert time.monotonic() - started < 6.0
    response = await asyncio.wait_for(hanging, timeout=10.0)
    await assert_error(response, 504, "gateway_timeout")


def test_log_lines_are_json() -> None:
    stream = io.StringIO()
    logger = logging.getLogger("sandbox.crm.test-json")
    logger.propagate = False
    logger.addHandler(json_handler(stream))
    logger.setLevel(logging.INFO)
    try:
        logger.info("crm simulator listening", extra={"url": "http://127.0.0.1:8090"})
    finally:
        logger.handlers.clear()
        logger.propagate = True
    line = json.loads(stream.getvalue())
    assert line["message"] == "crm simulator listening"
    assert line["url"] == "http://127.0.0.1:8090"
    assert line["level"] == "INFO"
    assert line["logger"] == "sandbox.crm.test-json"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d+\+00:00", line["ts"])
