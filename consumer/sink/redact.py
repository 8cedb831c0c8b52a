"""What of a CRM's error answer may be kept in logs and dead-letter headers.

An error body often echoes the request: the customer id, the attribute values, a validation
message quoting the offending field. That is customer data, and logs and dead-letter headers are
read by more people, kept longer and shipped further than the CRM's own records (GDPR art.
5(1)(c), data minimisation; the OWASP Logging Cheat Sheet lists personal data among what is not
to be logged directly). What is kept instead is what an operator needs to tell failures apart and
nothing that varies with the data:

* the HTTP status;
* the error *code*, the field APIs provide for machines: a short token, stable per kind of
  error (Stripe's ``error.code`` / ``error.type``, the common ``{"error": "..."}`` and
  ``{"code": "..."}`` forms, the first of an ``errors`` list, RFC 9457's problem ``type``), kept
  only when it looks like one: at most 100 characters of ``[A-Za-z0-9_.:/#-]``;
* the body's length in bytes, which tells an HTML error page from an API answer.

The free text (``message``, ``detail``, RFC 9457's occurrence-specific ``detail``) is dropped.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

_CODE: Final = re.compile(r"^[A-Za-z0-9_.:/#-]{1,100}$")
# Where APIs put their machine-readable error code, most specific first.
_CODE_PATHS: Final = (
    ("error", "code"),
    ("error", "type"),
    ("error",),
    ("code",),
    ("error_code",),
    ("errors", 0, "code"),
    ("type",),  # RFC 9457 problem details
)


def error_code(body: bytes) -> str | None:
    """The body's error code when it is JSON and has one that looks like a code; else None."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    for path in _CODE_PATHS:
        value = _at(document, path)
        if isinstance(value, str) and _CODE.match(value):
            return value
    return None


def describe_answer(status: int, body: bytes) -> str:
    """``HTTP 422, error code 'invalid_payload', 183-byte body``: safe to log."""
    code = error_code(body)
    coded = f", error code {code!r}" if code is not None else ", no error code"
    return f"HTTP {status}{coded}, {len(body)}-byte body"


def _at(document: Any, path: tuple[str | int, ...]) -> Any:
    for step in path:
        if isinstance(step, int):
            if not isinstance(document, list) or len(document) <= step:
                return None
        elif not isinstance(document, dict):
            return None
        document = document[step] if isinstance(step, int) else document.get(step)
    return document
