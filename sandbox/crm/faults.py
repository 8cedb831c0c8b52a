"""The CRM simulator's fault configuration: what goes wrong, and how often, changeable at run time.

The simulator starts with the faults its settings describe; ``POST /_sim/faults`` then changes any
subset of them while it runs (a partial JSON object). Unknown fields and out-of-range values are
refused as a whole: a half-applied fault change would make a test lie about what it exercised.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sandbox.crm.dialect import RateLimitHeaders, RetryAfterFormat

# A fraction of requests, 0 (never) to 1 (every one).
Rate = Annotated[float, Field(ge=0.0, le=1.0)]
# Injected latency. Ten minutes is far beyond any client timeout: a bigger value is a typo.
LatencyMs = Annotated[float, Field(ge=0.0, le=600_000.0)]
# Requests per second for the token bucket; 0 turns the limit off.
RatePerS = Annotated[float, Field(ge=0.0, le=1_000_000.0)]
# Bucket capacity: at least one token, or no request could ever pass.
Burst = Annotated[int, Field(ge=1, le=1_000_000)]
# How long a "timed out" request hangs before its 504. An hour is the upper bound of plausibility.
HangS = Annotated[float, Field(ge=0.0, le=3_600.0)]
# Retry-After of an injected 503 and of an outage, in whole seconds (RFC 9110 delay-seconds).
RetryAfterS = Annotated[int, Field(ge=1, le=86_400)]
# What the CRM keeps under an Idempotency-Key (see sandbox/crm/idempotency.py).
IdempotencyResults = Literal["executed", "successes"]
# The 3xx a moved /v1 answers with (RFC 9110 §15.4).
RedirectStatus = Literal[301, 302, 303, 307, 308]
# A customer-id prefix; empty would reject every customer, which ``outage`` already expresses.
Prefix = Annotated[str, Field(min_length=1, max_length=256)]


def check_fault_consistency(
    *,
    latency_ms_min: float,
    latency_ms_max: float,
    error_rate: float,
    timeout_rate: float,
) -> None:
    """Raise ``ValueError`` for combinations that have no meaning (shared with the settings)."""
    if latency_ms_min > latency_ms_max:
        msg = f"latency_ms_min ({latency_ms_min}) must not exceed latency_ms_max ({latency_ms_max})"
        raise ValueError(msg)
    # One draw decides a request's fate: timeout first, then error, so the two fractions share
    # the unit interval and cannot add up to more than every request.
    if error_rate + timeout_rate > 1.0:
        msg = f"error_rate + timeout_rate ({error_rate} + {timeout_rate}) must not exceed 1"
        raise ValueError(msg)


class Faults(BaseModel):
    """The faults in force. Immutable: a change builds a new, fully validated instance."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    latency_ms_min: LatencyMs = 0.0
    latency_ms_max: LatencyMs = 0.0
    error_rate: Rate = 0.0
    timeout_rate: Rate = 0.0
    hang_s: HangS = 30.0
    outage: bool = False
    revoke_token: bool = False
    reject_customer_prefix: Prefix | None = None
    # Updates (not creates) for customer ids with this prefix take ``slow_customer_ms`` longer:
    # one slow customer among fast ones, to show that it holds back only its own key and its
    # partition's committed offset, not the other customers.
    slow_customer_prefix: Prefix | None = None
    slow_customer_ms: LatencyMs = 0.0
    rate_limit_per_s: RatePerS = 0.0
    rate_limit_burst: Burst = 20
    error_retry_after_s: RetryAfterS = 1
    # Dialects: how this CRM stores idempotent results and words its throttling.
    idempotency_results: IdempotencyResults = "executed"
    retry_after_format: RetryAfterFormat = "seconds"
    rate_limit_headers: RateLimitHeaders = "none"
    # Every /v1 call answers this 3xx with a Location under /_sim/moved: the endpoint moved.
    redirect_status: RedirectStatus | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        check_fault_consistency(
            latency_ms_min=self.latency_ms_min,
            latency_ms_max=self.latency_ms_max,
            error_rate=self.error_rate,
            timeout_rate=self.timeout_rate,
        )
        return self

    def updated(self, changes: dict[str, Any]) -> Faults:
        """The faults with ``changes`` applied; raises ``pydantic.ValidationError`` if invalid.

        The merge is validated as a whole, so a change that is only consistent together with
        another (raising ``latency_ms_min`` above the current maximum) must carry both.
        """
        return Faults.model_validate({**self.model_dump(), **changes})
