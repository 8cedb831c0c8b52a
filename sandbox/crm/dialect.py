"""How the simulated CRM words its throttling: Retry-After and rate-limit headers, per dialect.

Real CRMs say the same things in different forms, and a client must understand each:

* ``Retry-After`` (RFC 9110 §10.2.3) is either delay-seconds (``Retry-After: 2``) or an
  HTTP-date (``Retry-After: Sun, 29 Nov 2026 10:15:03 GMT``). ``retry_after_format`` picks one.
  In the seconds form the simulator adds ``Retry-After-Ms`` (precise; the form Azure OpenAI and
  others use), in the date form it sends the date alone, so a client that cannot read dates
  learns nothing.
* Rate-limit headers, sent on every ``/v1`` answer that got past auth (429s included), so a
  client can slow down before it is throttled (``rate_limit_headers``):

  - ``ratelimit``: ``RateLimit`` and ``RateLimit-Policy``, the structured-field form of
    draft-ietf-httpapi-ratelimit-headers-11 (§3, §4): ``RateLimit-Policy: "default";q=50;w=1``
    and ``RateLimit: "default";r=7;t=1``.
  - ``x-ratelimit-delta``: ``X-RateLimit-Limit`` / ``-Remaining`` / ``-Reset`` with the reset as
    seconds from now, as Pipedrive's API does (``x-ratelimit-reset: 2``).
  - ``x-ratelimit-epoch``: the same names with the reset as Unix epoch seconds, as GitHub's REST
    API and Intercom's do (``x-ratelimit-reset: 1372700873``).

The simulator's limit is a token bucket (``rate`` tokens per second, at most ``burst``). The
headers describe it truthfully in each dialect's terms:

* ``RateLimit-Policy``: ``q`` per ``w`` seconds is the refill rate, with ``w`` the whole seconds
  an empty bucket takes to fill (at least 1) and ``q`` rounded down, so ``q/w`` never promises
  more than the bucket gives.
* ``RateLimit``: ``r`` whole tokens now; ``t`` the whole seconds (rounded up) until the next token,
  the time within which ``r`` is all the client can use (§4.1.2).
* ``X-RateLimit-*``: the limit is the bucket size, the remaining the whole tokens now, and the
  reset the moment the bucket is full again (rounded up), GitHub's "when the quota is restored".
"""

from __future__ import annotations

import math
import time
from email.utils import formatdate
from typing import Final, Literal

RetryAfterFormat = Literal["seconds", "http-date"]
RateLimitHeaders = Literal["none", "ratelimit", "x-ratelimit-delta", "x-ratelimit-epoch"]

RETRY_AFTER: Final = "Retry-After"
RETRY_AFTER_MS: Final = "Retry-After-Ms"
POLICY_NAME: Final = "default"


def retry_after_headers(
    wait_s: float, form: RetryAfterFormat, *, now: float | None = None
) -> dict[str, str]:
    """Headers telling a client to wait at least ``wait_s`` seconds (rounded up, never 0).

    ``now`` is the wall clock (epoch seconds) the date form counts from; the date is rounded up
    to the next whole second, so a client that waits until it never comes back too early.
    """
    wait_s = max(wait_s, 0.001)
    if form == "http-date":
        wall = time.time() if now is None else now
        return {RETRY_AFTER: formatdate(math.ceil(wall + wait_s), usegmt=True)}
    return {
        RETRY_AFTER: str(max(1, math.ceil(wait_s))),
        RETRY_AFTER_MS: str(max(1, math.ceil(wait_s * 1000.0))),
    }


def rate_limit_headers(
    dialect: RateLimitHeaders,
    *,
    tokens: float,
    rate_per_s: float,
    burst: int,
    now: float | None = None,
) -> dict[str, str]:
    """The headers describing a token bucket holding ``tokens`` (see the module docstring).

    Nothing for ``none`` or for an unlimited bucket (``rate_per_s`` 0: there is no limit to
    tell). ``now`` is the wall clock for the epoch form.
    """
    if dialect == "none" or rate_per_s <= 0.0:
        return {}
    whole = max(0, math.floor(tokens + 1e-9))
    if dialect == "ratelimit":
        window_s = max(1, math.ceil(burst / rate_per_s))
        quota = max(1, math.floor(rate_per_s * window_s + 1e-9))
        next_token_s = (whole + 1 - tokens) / rate_per_s
        return {
            "RateLimit-Policy": f'"{POLICY_NAME}";q={quota};w={window_s}',
            "RateLimit": f'"{POLICY_NAME}";r={whole};t={max(1, math.ceil(next_token_s))}',
        }
    full_in_s = max(0.0, (burst - tokens) / rate_per_s)
    if dialect == "x-ratelimit-delta":
        reset = math.ceil(full_in_s)
    else:
        wall = time.time() if now is None else now
        reset = math.ceil(wall + full_in_s)
    return {
        "X-RateLimit-Limit": str(burst),
        "X-RateLimit-Remaining": str(whole),
        "X-RateLimit-Reset": str(reset),
    }
