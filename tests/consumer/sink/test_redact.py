"""CRM error answers reduced to what may be logged: status, error code, length."""

from __future__ import annotations

import json

import pytest

from consumer.sink.redact import describe_answer, error_code

CUSTOMER = "C-4711"
CALLER = "+4915112345678"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        # The simulator's (and many CRMs') form, with the request echoed in the detail.
        (
            {
                "error": "invalid_payload",
                "detail": f"attributes.sentiment: {CALLER} is not a number",
                "fields": [{"field": "attributes.sentiment", "reason": CALLER}],
            },
            "invalid_payload",
        ),
        # Stripe's form.
        (
            {
                "error": {
                    "type": "invalid_request_error",
                    "message": f"No such customer: {CUSTOMER}",
                }
            },
            "invalid_request_error",
        ),
        (
            {"error": {"code": "resource_missing", "type": "invalid_request_error"}},
            "resource_missing",
        ),
        # A list of errors (JSON:API and others).
        ({"errors": [{"code": "E1001", "detail": f"customer {CUSTOMER} is locked"}]}, "E1001"),
        # RFC 9457 problem details: the type, not the occurrence-specific detail.
        (
            {"type": "https://crm.example/probs/locked", "detail": f"{CUSTOMER} is locked"},
            "https://crm.example/probs/locked",
        ),
        # A "code" that is prose is not a code.
        ({"error": f"customer {CUSTOMER} not allowed"}, None),
    ],
)
def test_only_the_error_code_is_kept_never_the_text(body: object, code: str | None) -> None:
    raw = json.dumps(body).encode()
    assert error_code(raw) == code
    described = describe_answer(422, raw)
    assert CUSTOMER not in described
    assert CALLER not in described
    assert described.startswith("HTTP 422")
    assert f"{len(raw)}-byte body" in described


@pytest.mark.parametrize(
    "body",
    [
        b"<html><body><h1>400 Bad Request</h1>The plain HTTP request was sent to HTTPS port</body>",
        b"",
        b"\xff\xfe not utf-8",
        b"[" * 100_000,  # deeper than the JSON parser goes
    ],
)
def test_bodies_that_are_not_json_keep_only_status_and_length(body: bytes) -> None:
    assert describe_answer(400, body) == f"HTTP 400, no error code, {len(body)}-byte body"
