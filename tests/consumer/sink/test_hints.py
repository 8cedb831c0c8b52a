"""Retry-After and rate-limit headers as the sink reads them: every form, and garbage."""

from __future__ import annotations

from email.utils import formatdate

import pytest

from consumer.ratelimit import QuotaHint
from consumer.sink.hints import MAX_HINT_S, quota_hint, retry_after_seconds

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        pytest.param({"Retry-After": "120"}, 120.0, id="delay-seconds"),
        pytest.param({"Retry-After": " 3 "}, 3.0, id="spaces"),
        pytest.param({"Retry-After": "1.5"}, 1.5, id="decimal-tolerated"),
        pytest.param({"Retry-After": "2", "Retry-After-Ms": "1500"}, 1.5, id="ms-wins"),
        pytest.param({"Retry-After": formatdate(NOW + 7, usegmt=True)}, 7.0, id="imf-fixdate"),
        pytest.param({"Retry-After": "Fri, 15 Jan 2027 08:00:09 -0000"}, 9.0, id="minus-zero"),
        pytest.param({"Retry-After": "Friday, 15-Jan-27 08:00:05 GMT"}, 5.0, id="rfc850"),
        pytest.param({"Retry-After": "Fri Jan 15 08:00:04 2027"}, 4.0, id="asctime"),
        pytest.param({"Retry-After": formatdate(NOW - 60, usegmt=True)}, 0.0, id="date-past"),
        pytest.param({"Retry-After": "Fri, 31 Dec 9999 23:59:59 GMT"}, MAX_HINT_S, id="far-date"),
        pytest.param({"Retry-After": "9" * 500}, MAX_HINT_S, id="huge"),
        pytest.param({"Retry-After": "-5"}, None, id="negative"),
        pytest.param({"Retry-After": "soon"}, None, id="garbage"),
        pytest.param({"Retry-After": "NaN"}, None, id="nan"),
        pytest.param({"Retry-After": "1e9"}, None, id="exponent"),
        pytest.param({"Retry-After": "Fri, 32 Jan 2027 08:00:00 GMT"}, None, id="bad-day"),
        pytest.param({"Retry-After": ""}, None, id="empty"),
        pytest.param({"Retry-After": "\udcff"}, None, id="undecodable"),
        pytest.param({"Retry-After-Ms": "x", "Retry-After": "4"}, 4.0, id="bad-ms-falls-back"),
        pytest.param({}, None, id="absent"),
    ],
)
def test_retry_after_in_every_form(headers: dict[str, str], seconds: float | None) -> None:
    assert retry_after_seconds(headers, now=NOW) == (
        None if seconds is None else pytest.approx(seconds)
    )


@pytest.mark.parametrize(
    ("headers", "hint"),
    [
        pytest.param(
            {"RateLimit": '"default";r=50;t=30', "RateLimit-Policy": '"default";q=100;w=60'},
            QuotaHint(remaining=50, reset_s=30.0, rate_per_s=100 / 60),
            id="ietf",
        ),
        pytest.param(
            {"RateLimit": '"burst";r=9;t=1, "day";r=3;t=3600'},
            QuotaHint(remaining=3, reset_s=3600.0, rate_per_s=None),
            id="ietf-most-restrictive",
        ),
        pytest.param(
            {"RateLimit-Policy": '"permin";q=60;w=60, "perhr";q=1800;w=3600'},
            QuotaHint(remaining=None, reset_s=0.0, rate_per_s=0.5),
            id="policy-only",
        ),
        pytest.param(
            {"RateLimit": '"default";r=4'},
            QuotaHint(remaining=4, reset_s=1.0, rate_per_s=None),
            id="no-window",
        ),
        pytest.param(
            {"X-RateLimit-Limit": "40", "X-RateLimit-Remaining": "39", "X-RateLimit-Reset": "2"},
            QuotaHint(remaining=39, reset_s=2.0, rate_per_s=None),
            id="x-delta-pipedrive",
        ),
        pytest.param(
            {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(NOW) + 42)},
            QuotaHint(remaining=0, reset_s=42.0, rate_per_s=None),
            id="x-epoch-github",
        ),
        pytest.param(
            {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(NOW) - 42)},
            QuotaHint(remaining=0, reset_s=0.0, rate_per_s=None),
            id="x-epoch-past",
        ),
        pytest.param(
            {"X-RateLimit-Remaining": "1", "X-RateLimit-Reset": "99999999999999"},
            QuotaHint(remaining=1, reset_s=MAX_HINT_S, rate_per_s=None),
            id="x-epoch-far",
        ),
        pytest.param(
            {"RateLimit": "garbage;;", "X-RateLimit-Remaining": "5"},
            QuotaHint(remaining=5, reset_s=1.0, rate_per_s=None),
            id="malformed-ietf-ignored",
        ),
        pytest.param({"RateLimit": '"a";r=-1;t=1'}, None, id="negative-remaining"),
        pytest.param({"RateLimit": '"a";r=?1;t=1'}, None, id="boolean-remaining"),
        pytest.param({"RateLimit": '"a";r=5;t=1.5'}, None, id="decimal-window"),
        pytest.param({"RateLimit": '"a";r=5, "b";t=1'}, None, id="one-item-malformed"),
        pytest.param({"RateLimit-Policy": '"a";q=10;w=0'}, None, id="zero-window"),
        pytest.param({"RateLimit": '"ä";r=1'}, None, id="non-ascii"),
        pytest.param({"X-RateLimit-Remaining": "2.5"}, None, id="x-fraction"),
        pytest.param({"X-RateLimit-Remaining": "lots"}, None, id="x-garbage"),
        pytest.param({}, None, id="absent"),
    ],
)
def test_quota_hints_in_every_dialect(headers: dict[str, str], hint: QuotaHint | None) -> None:
    read = quota_hint(headers, now=NOW)
    if hint is None:
        assert read is None
        return
    assert read is not None
    assert read.remaining == hint.remaining
    assert read.reset_s == pytest.approx(hint.reset_s)
    if hint.rate_per_s is None:
        assert read.rate_per_s is None
    else:
        assert read.rate_per_s == pytest.approx(hint.rate_per_s)
