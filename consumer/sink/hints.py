"""What a CRM's answer says about when to call again: Retry-After and rate-limit headers.

Every parser here takes whatever a server (or a proxy in front of it) sent, and never raises:
a malformed value is no hint (draft-ietf-httpapi-ratelimit-headers-11 §7: "Malformed RateLimit
header fields MUST be ignored"), and an extreme one is capped at :data:`MAX_HINT_S`.

* ``Retry-After`` (RFC 9110 §10.2.3): delay-seconds (``120``) or an HTTP-date (``Fri, 31 Dec
  1999 23:59:59 GMT``, and the obsolete RFC 850 and asctime forms the RFC says to accept), read
  with :func:`email.utils.parsedate_to_datetime`. A date in the past means "now". The precise
  ``Retry-After-Ms`` wins when a server sends both.
* ``RateLimit`` / ``RateLimit-Policy`` (the IETF draft, RFC 9651 structured-field lists, parsed
  with ``http_sf``): ``RateLimit: "default";r=50;t=30`` - 50 requests left within 30 s;
  ``RateLimit-Policy: "default";q=100;w=60`` - 100 requests per 60 s. With several items the
  most restrictive one counts (the fewest requests left, the lowest rate).
* ``X-RateLimit-Remaining`` / ``X-RateLimit-Reset`` (no standard; the draft's appendix lists the
  variants): the reset is seconds from now at Pipedrive (``x-ratelimit-reset: 2``) and Unix epoch
  seconds at GitHub and Intercom (``x-ratelimit-reset: 1372700873``). A value of 10^9 or more is
  read as an epoch (that is 2001-09-09; no quota window is 31 years long), anything below as
  seconds from now. Used only when there is no valid ``RateLimit`` field.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any, Final

import http_sf

from consumer.ratelimit import QuotaHint

# A day. A longer hint is a bug or an attack (the draft's §8.5.1 "Denial of Service"); the
# limiter and the retry policy cap what they honour further (5 minutes).
MAX_HINT_S: Final = 86_400.0
# Read as Unix epoch seconds from here on (2001-09-09T01:46:40Z).
EPOCH_THRESHOLD: Final = 1_000_000_000.0
# A quota without a window still holds "now": one second, HTTP's smallest delay.
DEFAULT_WINDOW_S: Final = 1.0
_NUMBER: Final = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_UNPARSABLE: Final = (ValueError, TypeError, OverflowError, IndexError, UnicodeError)

Headers = Mapping[str, str]


def _number(raw: str | None) -> float | None:
    """A non-negative decimal number, capped at :data:`MAX_HINT_S` x 10^6, else None."""
    if raw is None:
        return None
    text = raw.strip()
    if not _NUMBER.fullmatch(text):
        return None
    value = float(text[:40]) if len(text) <= 40 else math.inf
    return min(value, MAX_HINT_S * 1e6)


def _capped(seconds: float) -> float:
    return min(max(seconds, 0.0), MAX_HINT_S)


def retry_after_seconds(headers: Headers, *, now: float | None = None) -> float | None:
    """Seconds to wait from ``Retry-After-Ms`` or ``Retry-After``; None when absent or garbage.

    ``now`` is the wall clock (epoch seconds) an HTTP-date is compared with.
    """
    precise = _number(headers.get("Retry-After-Ms"))
    if precise is not None:
        return _capped(precise / 1000.0)
    raw = headers.get("Retry-After")
    if raw is None:
        return None
    seconds = _number(raw)
    if seconds is not None:
        return _capped(seconds)
    try:
        when = parsedate_to_datetime(raw.strip())
    except _UNPARSABLE:
        return None
    if when.tzinfo is None:  # "-0000": UTC, with no claim about the local zone (RFC 5322)
        when = when.replace(tzinfo=UTC)
    wall = time.time() if now is None else now
    try:
        return _capped(when.timestamp() - wall)
    except _UNPARSABLE:
        return None


def _int_param(params: Mapping[str, Any], name: str) -> int | None:
    value = params.get(name)
    if type(value) is not int or value < 0:  # bool is an int subclass, and not a count
        return None
    return value


def _sf_list(raw: str | None) -> list[tuple[Any, Mapping[str, Any]]] | None:
    if raw is None:
        return None
    try:
        parsed = http_sf.parse(raw.encode("utf-8", "surrogateescape"), tltype="list")
    except (http_sf.StructuredFieldError, *_UNPARSABLE):
        return None
    if not isinstance(parsed, list):
        return None
    return [item for item in parsed if isinstance(item, tuple) and isinstance(item[1], Mapping)]


def _ietf_limit(headers: Headers) -> tuple[int, float] | None:
    """``(remaining, window_s)`` of the most restrictive ``RateLimit`` item, or None."""
    items = _sf_list(headers.get("RateLimit"))
    best: tuple[int, float] | None = None
    for _, params in items or ():
        remaining = _int_param(params, "r")
        window = _int_param(params, "t") if "t" in params else DEFAULT_WINDOW_S
        if remaining is None or window is None:
            return None  # one malformed item makes the field malformed
        if best is None or remaining < best[0]:
            best = (remaining, float(window))
    return best


def _ietf_rate(headers: Headers) -> float | None:
    """Requests per second of the most restrictive ``RateLimit-Policy`` item, or None."""
    rates = []
    for _, params in _sf_list(headers.get("RateLimit-Policy")) or ():
        quota, window = _int_param(params, "q"), _int_param(params, "w")
        if quota is None or ("w" in params and not window):
            return None
        if window and params.get("qu", "requests") == "requests":
            rates.append(quota / window)
    return min(rates) if rates else None


def _x_quota(headers: Headers) -> int | None:
    limit = _number(headers.get("X-RateLimit-Limit"))
    return None if limit is None or limit != int(limit) else int(min(limit, 2**31))


def _x_limit(headers: Headers, now: float | None) -> tuple[int, float] | None:
    remaining = _number(headers.get("X-RateLimit-Remaining"))
    if remaining is None or remaining != int(remaining):
        return None
    reset = _number(headers.get("X-RateLimit-Reset"))
    if reset is None:
        window = DEFAULT_WINDOW_S
    elif reset >= EPOCH_THRESHOLD:
        window = reset - (time.time() if now is None else now)
    else:
        window = reset
    return int(min(remaining, 2**31)), _capped(window)


def quota_hint(headers: Headers, *, now: float | None = None) -> QuotaHint | None:
    """What the rate-limit headers say, for the whole client (every instance of the group),
    or None when they say nothing usable. ``now`` is the wall clock for epoch resets."""
    ietf = _ietf_limit(headers)
    limit = ietf or _x_limit(headers, now)
    rate = _ietf_rate(headers)
    if limit is None and rate is None:
        return None
    if limit is None:
        return QuotaHint(remaining=None, reset_s=0.0, rate_per_s=rate)
    remaining, window = limit
    restored = None if ietf is not None else _x_quota(headers)
    return QuotaHint(remaining, _capped(window), rate, limit=restored)
