"""What a request can cost the bridge: bytes read, time held, log lines, against the real broker.

An anonymous caller gets nothing read; a body is read no further than its limit and no longer
than the read timeout; a body that cannot be decoded, a coding the bridge does not take, or a
client that goes away is a 4xx or one quiet log line, never a 500 with a traceback.
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from sandbox.send import signed_headers
from support.bridge import (
    BATCH,
    EVENTS,
    Answer,
    BridgeUnderTest,
    architect,
    assert_problem,
    serve_bridge,
)
from support.kafka import TopicFactory
from support.rawhttp import raw_exchange, request_head

pytestmark = pytest.mark.kafka

JSON = {"Content-Type": "application/json"}
READ_TIMEOUT_MS = 1500


@pytest.fixture
async def bridge(kafka_bootstrap: str, topics: TopicFactory) -> AsyncIterator[BridgeUnderTest]:
    async with serve_bridge(
        kafka_bootstrap, topics.create("bounds"), body_read_timeout_ms=READ_TIMEOUT_MS
    ) as served:
        yield served


def signed(bridge: BridgeUnderTest, body: str = "{}") -> dict[str, str]:
    headers = signed_headers(bridge.secret, body)
    headers.pop("Content-Type", None)
    return headers


async def post_encoded(bridge: BridgeUnderTest, coding: str, raw: bytes | None = None) -> Answer:
    """A signed event whose body is ``raw`` (default: the JSON itself) sent under
    ``Content-Encoding: coding``; the signature covers the JSON, as the bridge reads it."""
    body = json.dumps(architect())
    return await bridge.post(
        EVENTS,
        raw=body.encode() if raw is None else raw,
        sign=False,
        headers={**signed(bridge, body), "Content-Encoding": coding},
    )


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        f"{r.name}: {r.getMessage()}"
        for r in caplog.records
        if r.levelno >= logging.ERROR or r.exc_info is not None
    ]


# --- credentials before the body: an anonymous caller cannot make the bridge read anything ----


@pytest.mark.parametrize(
    "credentials",
    [
        lambda b: {},
        lambda b: {"webhook-signature": "v1,anything"},
        lambda b: {**signed(b), "webhook-signature": "nonsense"},
        lambda b: {
            **signed(b),
            "webhook-timestamp": str(int(signed(b)["webhook-timestamp"]) - 400),
        },
        lambda b: {**signed(b), "webhook-id": "msg\t1"},
    ],
    ids=["none", "signature-without-id-or-time", "malformed-signature", "expired", "bad-id"],
)
@pytest.mark.parametrize("path", [EVENTS, BATCH])
async def test_a_caller_without_plausible_credentials_gets_401_before_any_body_byte(
    bridge: BridgeUnderTest, credentials: Any, path: str
) -> None:
    # A declared length within the batch limit and no body at all: a bridge that waited to read
    # it would answer 408 after the read timeout (or, without one, never).
    head = request_head(path, {**JSON, **credentials(bridge), "Content-Length": "1000000"})
    answer = await raw_exchange(bridge.url, head, timeout_s=READ_TIMEOUT_MS / 1000 - 0.5)
    assert answer.status == 401
    assert answer.headers["connection"] == "close"  # no keep-alive after a body left unread
    assert bridge.metrics.request_bytes.labels(path)._value.get() == 0
    assert bridge.records() == []


# --- the byte limits -----------------------------------------------------------------------------


async def test_a_declared_length_over_the_limit_gets_413_before_any_body_byte_is_sent(
    bridge: BridgeUnderTest,
) -> None:
    head = request_head(EVENTS, {**JSON, **signed(bridge), "Content-Length": str(10 * 1024**2)})
    answer = await raw_exchange(bridge.url, head)
    assert answer.status == 413
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert bridge.records() == []


async def test_a_chunked_body_is_read_no_further_than_the_limit(bridge: BridgeUnderTest) -> None:
    limit = bridge.settings.max_event_bytes
    chunk = b"x" * (limit + 1)
    head = request_head(EVENTS, {**JSON, **signed(bridge), "Transfer-Encoding": "chunked"})
    # One chunk just over the limit and no terminating chunk: the answer can only come from a
    # server that stopped reading at the limit instead of waiting for the rest.
    answer = await raw_exchange(bridge.url, head + f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
    assert answer.status == 413
    assert bridge.records() == []


# --- the read timeout ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", [EVENTS, BATCH])
async def test_a_body_that_stops_arriving_gets_408_and_the_connection_closed(
    bridge: BridgeUnderTest, path: str
) -> None:
    body = json.dumps(architect())
    head = request_head(path, {**JSON, **signed(bridge, body), "Content-Length": str(len(body))})
    answer = await raw_exchange(bridge.url, head + body[:20].encode(), timeout_s=10)
    assert answer.status == 408
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert json.loads(answer.body)["type"].endswith("/request-timeout")
    assert answer.headers["connection"] == "close"  # RFC 9110 §15.5.9
    assert bridge.records() == []


async def test_a_body_that_arrives_in_time_is_stored(bridge: BridgeUnderTest) -> None:
    body = json.dumps(architect())
    head = request_head(EVENTS, {**JSON, **signed(bridge, body), "Content-Length": str(len(body))})
    answer = await raw_exchange(bridge.url, head + body.encode())
    assert answer.status == 202
    assert len(bridge.records()) == 1


# --- content codings ----------------------------------------------------------------------------


async def test_a_gzip_body_is_decoded_and_its_signature_checked_over_the_json(
    bridge: BridgeUnderTest,
) -> None:
    body = json.dumps(architect())
    answer = await bridge.post(
        EVENTS,
        raw=gzip.compress(body.encode()),
        sign=False,
        headers={**signed(bridge, body), "Content-Encoding": "gzip"},
    )
    assert answer.status == 202, answer.body
    assert len(bridge.records()) == 1


async def test_a_body_that_is_not_the_gzip_it_claims_gets_400_without_a_traceback(
    bridge: BridgeUnderTest, caplog: pytest.LogCaptureFixture
) -> None:
    answer = await post_encoded(bridge, "gzip")
    assert assert_problem(answer, 400)["type"].endswith("/undecodable-body")
    assert errors_logged(caplog) == []
    assert bridge.records() == []


# x-gzip: RFC 9110 §8.4.1.3 lets a recipient treat it as gzip; aiohttp does not decode it, and
# the bridge names the codings it does decode rather than decompress outside aiohttp's bounds.
@pytest.mark.parametrize("coding", ["compress", "gzip, deflate", "x-custom", "x-gzip"])
async def test_a_content_coding_the_bridge_does_not_decode_gets_415_naming_the_accepted_ones(
    bridge: BridgeUnderTest, coding: str
) -> None:
    answer = await post_encoded(bridge, coding)
    assert assert_problem(answer, 415)["type"].endswith("/unsupported-content-coding")
    assert answer.headers["Accept-Encoding"] == "gzip, deflate"
    assert bridge.records() == []


async def test_a_coding_the_http_layer_cannot_decode_is_a_quiet_400(
    bridge: BridgeUnderTest, caplog: pytest.LogCaptureFixture
) -> None:
    # aiohttp refuses br itself (400) when no Brotli decoder is installed, and decodes it when
    # one is: either way a 4xx and no traceback.
    caplog.set_level(logging.INFO)
    answer = await post_encoded(bridge, "br", b"not brotli")
    assert 400 <= answer.status < 500
    assert errors_logged(caplog) == []
    assert bridge.records() == []


# --- duplicate names ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (EVENTS, '{"customerId": "C-1", ' + json.dumps(architect())[1:]),
        (BATCH, "[" + json.dumps(architect())[:-1] + ', "tags": []}]'),
    ],
    ids=["event", "batch"],
)
async def test_a_json_object_with_a_member_twice_gets_400(
    bridge: BridgeUnderTest, path: str, body: str
) -> None:
    answer = await bridge.post(path, raw=body.encode())
    assert "twice" in assert_problem(answer, 400)["detail"]
    assert bridge.records() == []
