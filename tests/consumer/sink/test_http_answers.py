"""A property test of the CRM's status-and-header space (issue 8, "Must show").

Whatever a CRM (or a proxy in front of it) answers - any status from 100 to 599, with the
Retry-After, RateLimit, RateLimit-Policy and X-RateLimit-* headers valid, invalid, extreme or
absent, and any body - one write of the HTTP sink ends in exactly one way: written, or one of the
sink's own errors (:class:`SinkUnavailableError` - retry, :class:`SinkRejectedError` -
dead-letter, :class:`SinkUnusableError` - pause), and which one follows the rule of README's
error table, written out again in :func:`expected` from the table, not from the code. The
limiter only ever receives sane hints. The server is a raw TCP server writing the drawn bytes
(it is the client's behaviour under test here; the simulator has its own tests).
"""

from __future__ import annotations

import asyncio
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime

from hypothesis import example, given, settings
from hypothesis import strategies as st

from consumer.errors import SinkError, SinkRejectedError, SinkUnavailableError, SinkUnusableError
from consumer.ratelimit import QuotaHint
from consumer.sink import CustomerUpdate
from consumer.sink.hints import MAX_HINT_S
from consumer.sink.http import CrmHttpSink

REJECTED = {400, 410, 413, 415, 422}
KEY_IN_USE = b'{"error": "idempotency_key_in_use", "detail": "still executing"}'
EXISTS = b'{"error": "customer_exists", "detail": "already there"}'


@dataclass(frozen=True)
class Answer:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


def expected(script: list[Answer]) -> str:
    """README "Errors, by whom they are about", request by request: update, create, update."""

    def common(answer: Answer) -> str | None:
        if 200 <= answer.status < 300:
            return "written"
        if 300 <= answer.status < 400 or answer.status in {401, 403}:
            return "unusable"
        if answer.status in REJECTED:
            return "rejected"
        return None

    update, create, second_update = script
    first = common(update)
    if first is not None:
        return first
    if update.status != 404:
        return "unavailable"  # 409 (key in use), 429, 5xx, 1xx, 408, unknown codes
    outcome = common(create)
    if outcome is not None:
        return outcome
    if create.status == 404:
        return "unusable"  # the create endpoint is missing
    if create.status != 409 or create.body == KEY_IN_USE:
        return "unavailable"
    return common(second_update) or "unavailable"  # 404 right after "exists": retry


# -- what a server may send ----------------------------------------------------------------------

NOW = datetime.now(UTC).timestamp()
garbage = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=30,
)
numbers = st.one_of(
    st.integers(min_value=-5, max_value=10**6).map(str),
    st.integers(min_value=0, max_value=10**400).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
)
dates = st.floats(min_value=-(10**10), max_value=10**10).map(
    lambda offset: format_datetime(
        datetime.fromtimestamp(max(0.0, min(NOW + offset, 253_402_300_799.0)), UTC), usegmt=True
    )
)
retry_after = st.one_of(numbers, dates, garbage)
sf_int = st.one_of(st.integers(min_value=-3, max_value=10**15), st.just(10**16))
sf_item = st.builds(
    lambda name, params: f'"{name}"' + "".join(f";{k}={v}" for k, v in params),
    st.sampled_from(["default", "burst", "day"]),
    st.lists(
        st.tuples(
            st.sampled_from(["r", "t", "q", "w", "qu", "pk"]),
            st.one_of(sf_int.map(str), st.sampled_from(['"requests"', "?1", "1.5", "-0"])),
        ),
        max_size=4,
    ),
)
sf_list = st.one_of(st.lists(sf_item, min_size=1, max_size=3).map(", ".join), garbage)
header_values = {
    "Retry-After": retry_after,
    "Retry-After-Ms": numbers,
    "RateLimit": sf_list,
    "RateLimit-Policy": sf_list,
    "X-RateLimit-Remaining": st.one_of(numbers, garbage),
    "X-RateLimit-Reset": st.one_of(numbers, st.integers(0, 2 * 10**9).map(str), garbage),
    "X-RateLimit-Limit": numbers,
    "Location": st.one_of(st.just("/v2/customers/update"), garbage),
}


@st.composite
def answers(draw: st.DrawFn) -> Answer:
    status = draw(
        st.one_of(
            st.integers(min_value=100, max_value=599),
            st.sampled_from([200, 201, 204, 301, 308, 401, 404, 409, 422, 429, 503]),
        )
    )
    names = draw(st.lists(st.sampled_from(sorted(header_values)), unique=True, max_size=5))
    headers = tuple((name, draw(header_values[name])) for name in names)
    body = draw(st.sampled_from([KEY_IN_USE, EXISTS, b"", b"\xff\xfe not json", b"[1]"]))
    return Answer(status, headers, body)


# -- a server that answers them ------------------------------------------------------------------


@dataclass
class ScriptedCrm:
    script: list[Answer]
    seen: list[str] = field(default_factory=list)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            self.seen.append(head.split(b" ")[1].decode())
            answer = self.script[len(self.seen) - 1]
            writer.write(self._encode(answer))
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, IndexError):
            pass
        finally:
            writer.close()

    @staticmethod
    def _encode(answer: Answer) -> bytes:
        lines = [f"HTTP/1.1 {answer.status} Whatever"]
        lines += [f"{name}: {value}" for name, value in answer.headers]
        bodyless = answer.status < 200 or answer.status in {204, 304}
        body = b"" if bodyless else answer.body
        if not bodyless:
            lines.append(f"Content-Length: {len(body)}")
        lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@dataclass
class RecordingPacer:
    hints: list[QuotaHint] = field(default_factory=list)
    acquired: int = 0

    async def acquire(self) -> float:
        self.acquired += 1
        return 0.0

    async def wait_while_paused(self) -> None:
        return None

    def observe_quota(self, hint: QuotaHint) -> None:
        self.hints.append(hint)


UPDATE = CustomerUpdate(
    customer_id="C-1",
    attributes={"sentiment": 0.4},
    last_updated=datetime(2026, 11, 28, 10, 15, tzinfo=UTC),
    idempotency_key="evt-1",
    event_id="evt-1",
)


async def write_against(script: list[Answer]) -> tuple[str, SinkError | None, RecordingPacer]:
    crm = ScriptedCrm(script)
    server = await asyncio.start_server(crm.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pacer = RecordingPacer()
    sink = CrmHttpSink(f"http://127.0.0.1:{port}", "token", timeout_s=2.0, pacer=pacer)
    outcome, error = "written", None
    try:
        await sink.write(UPDATE)
    except SinkUnavailableError as exc:
        outcome, error = "unavailable", exc
    except SinkRejectedError as exc:
        outcome, error = "rejected", exc
    except SinkUnusableError as exc:
        outcome, error = "unusable", exc
    finally:
        await sink.close()
        server.close()
        await server.wait_closed()
    assert crm.seen[0] == "/v1/customers/update"
    assert crm.seen[1:] in ([], ["/v1/customers"], ["/v1/customers", "/v1/customers/update"])
    assert pacer.acquired == len(crm.seen) - 1  # a token for each follow-up request
    return outcome, error, pacer


OK = Answer(200, (), b"")
NOT_FOUND = Answer(404, (), b"")


@settings(max_examples=300)
@given(st.lists(answers(), min_size=3, max_size=3))
@example([Answer(100, (), b""), OK, OK])
@example([Answer(101, (), b""), OK, OK])
@example([Answer(304, (), b""), OK, OK])
@example([Answer(301, (("Location", "/v2/customers/update"),), b""), OK, OK])
@example([NOT_FOUND, NOT_FOUND, OK])
@example([NOT_FOUND, Answer(409, (), KEY_IN_USE), OK])
@example([NOT_FOUND, Answer(409, (), EXISTS), NOT_FOUND])
@example([NOT_FOUND, Answer(409, (), EXISTS), Answer(201, (), b"")])
@example([Answer(409, (), EXISTS), OK, OK])
@example([Answer(429, (("Retry-After", "Sun, 06 Nov 1994 08:49:37 GMT"),), b""), OK, OK])
@example([Answer(503, (("Retry-After", "9" * 500), ("RateLimit", '"a";r=1;t=99999')), b""), OK, OK])
def test_every_answer_ends_the_write_as_the_error_table_says(script: list[Answer]) -> None:
    outcome, error, pacer = asyncio.run(write_against(script))
    assert outcome == expected(script), (outcome, error)
    if isinstance(error, SinkUnavailableError) and error.retry_after is not None:
        assert 0.0 <= error.retry_after <= MAX_HINT_S
    for hint in pacer.hints:
        assert hint.remaining is None or hint.remaining >= 0
        assert 0.0 <= hint.reset_s <= MAX_HINT_S
        assert hint.rate_per_s is None or (math.isfinite(hint.rate_per_s) and hint.rate_per_s >= 0)
        assert hint.in_flight == 0
    if error is not None:
        json.dumps(str(error))  # a message that logs and dead-letter headers can carry
