"""Settings of the CRM simulator, read from ``SEGSTREAM_CRM_SIM_*`` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sandbox.crm.dialect import RateLimitHeaders, RetryAfterFormat
from sandbox.crm.faults import (
    Burst,
    Faults,
    HangS,
    IdempotencyResults,
    LatencyMs,
    Prefix,
    Rate,
    RatePerS,
    RedirectStatus,
    RetryAfterS,
    check_fault_consistency,
)
from sandbox.errors import SandboxError

ENV_PREFIX = "SEGSTREAM_CRM_SIM_"


class CrmTokenError(SandboxError, ValueError):
    """The simulator's bearer token is missing, ambiguous, unreadable or empty."""


class CrmSimulatorSettings(BaseSettings):
    """How the CRM simulator listens, whom it lets in, and which faults it starts with.

    Every field maps to ``SEGSTREAM_CRM_SIM_<FIELD>`` (``SEGSTREAM_CRM_SIM_TOKEN_FILE``, ...).
    The fault fields only set the initial faults; ``POST /_sim/faults`` changes them at run time.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    # Loopback by default: the simulator holds no secrets of value but is not meant to be reached
    # from other machines unless someone asks for it (docker-compose sets 0.0.0.0).
    host: str = "127.0.0.1"
    # 8090 is the project's documented local CRM address (http://127.0.0.1:8090); 0 picks a port.
    port: Annotated[int, Field(ge=0, le=65_535)] = 8090

    # The bearer token clients must present. Exactly one of ``token`` and ``token_file`` is set;
    # the file form exists because deployments mount secrets as files (and ``make run`` writes
    # ``.run/crm-token``), which keeps the token out of process listings and environment dumps.
    token: SecretStr | None = None
    token_file: Path | None = None

    # The token bucket. Unlimited by default so unit tests are not throttled by accident; the
    # benchmarks and the rate-limit tests set a rate to see 429s the way a real CRM sends them.
    rate_limit_per_s: RatePerS = 0.0
    # 20 matches a typical SaaS CRM's short burst allowance on top of its sustained rate.
    rate_limit_burst: Burst = 20

    # Injected latency per /v1 request, drawn uniformly from [min, max] milliseconds: the time the
    # CRM spends executing a valid request (holding its Idempotency-Key, so a second request with
    # the key meanwhile gets 409). Zero by default: tests that need a slow CRM say so, everything
    # else stays fast and deterministic.
    latency_ms_min: LatencyMs = 0.0
    latency_ms_max: LatencyMs = 0.0

    # Fraction of /v1 requests answered 503 or 500 (half each) before anything is changed.
    error_rate: Rate = 0.0
    # Retry-After of those 503s and of an outage's, in seconds.
    error_retry_after_s: RetryAfterS = 1
    # Fraction of /v1 requests that hang ``hang_s`` and then answer 504: a CRM that stops
    # answering. 30 s is longer than any sane client timeout (the consumer uses 5 s), so the
    # client sees a timeout of its own first, as it would against a stuck production CRM.
    timeout_rate: Rate = 0.0
    hang_s: HangS = 30.0

    # A real CRM answers 404 for customers it does not know, and the consumer must create them
    # first (the seed's Edge Case 2). ``True`` creates them on update instead, for benchmarks
    # that only care about throughput.
    auto_create: bool = False
    # Updates for customer ids with this prefix get 422: a payload the CRM refuses, which the
    # consumer must dead-letter rather than retry.
    reject_customer_prefix: Prefix | None = None
    # Every /v1 call answers 503: the CRM is down.
    outage: bool = False
    # Every /v1 call answers 401 even with the right token: the credential was revoked.
    revoke_token: bool = False

    # Dialects (README "CRM simulator"; each modelled on a real API, cited where implemented).
    # What an Idempotency-Key keeps: "executed" - the first result of a request that began
    # executing, errors (404 included) too, as Stripe does; "successes" - 2xx results only, as
    # Deel's API and Salesforce's UI API record writes do (sandbox/crm/idempotency.py).
    idempotency_results: IdempotencyResults = "executed"
    # Retry-After of 429 and 503 as delay-seconds (plus Retry-After-Ms) or as an HTTP-date.
    retry_after_format: RetryAfterFormat = "seconds"
    # Rate-limit headers on every answer past auth: none, the IETF draft's RateLimit /
    # RateLimit-Policy, or X-RateLimit-* with the reset as seconds from now or as epoch seconds.
    rate_limit_headers: RateLimitHeaders = "none"
    # Every /v1 call answers this 3xx (a moved endpoint); unset answers normally.
    redirect_status: RedirectStatus | None = None

    # Seed for the fault dice (latency, errors, timeouts); ``None`` draws from the OS. A seed makes
    # a benchmark's fault pattern repeatable.
    random_seed: int | None = None

    # Level of the JSON log on stderr. DEBUG adds one line per /v1 request.
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("redirect_status", mode="before")
    @classmethod
    def _status_from_env(cls, value: object) -> object:
        # Environment variables are strings; a Literal of ints does not convert them itself.
        return int(value) if isinstance(value, str) and value.strip().isdigit() else value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        check_fault_consistency(
            latency_ms_min=self.latency_ms_min,
            latency_ms_max=self.latency_ms_max,
            error_rate=self.error_rate,
            timeout_rate=self.timeout_rate,
        )
        return self

    def bearer_token(self) -> str:
        """The token clients must send as ``Authorization: Bearer <token>``.

        Read from ``token`` or from ``token_file`` (whitespace stripped, so a trailing newline
        written by ``echo`` does not count). Raises :class:`CrmTokenError` when neither or both
        are set, when the file cannot be read, or when the token is empty.
        """
        if self.token is not None and self.token_file is not None:
            msg = (
                f"set only one of {ENV_PREFIX}TOKEN and {ENV_PREFIX}TOKEN_FILE, not both: "
                "it would be unclear which token the simulator accepts"
            )
            raise CrmTokenError(msg)
        if self.token is not None:
            value = self.token.get_secret_value().strip()
            source = f"{ENV_PREFIX}TOKEN"
        elif self.token_file is not None:
            try:
                value = self.token_file.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                msg = f"cannot read the CRM token file {self.token_file}: {exc.__class__.__name__}"
                raise CrmTokenError(msg) from exc
            source = f"token file {self.token_file}"
        else:
            msg = (
                f"the CRM simulator needs a bearer token: set {ENV_PREFIX}TOKEN or "
                f"{ENV_PREFIX}TOKEN_FILE (a file holding the token)"
            )
            raise CrmTokenError(msg)
        if not value:
            msg = f"the CRM token from {source} is empty"
            raise CrmTokenError(msg)
        return value

    def initial_faults(self) -> Faults:
        """The faults the simulator starts with."""
        return Faults(
            latency_ms_min=self.latency_ms_min,
            latency_ms_max=self.latency_ms_max,
            error_rate=self.error_rate,
            timeout_rate=self.timeout_rate,
            hang_s=self.hang_s,
            outage=self.outage,
            revoke_token=self.revoke_token,
            reject_customer_prefix=self.reject_customer_prefix,
            rate_limit_per_s=self.rate_limit_per_s,
            rate_limit_burst=self.rate_limit_burst,
            error_retry_after_s=self.error_retry_after_s,
            idempotency_results=self.idempotency_results,
            retry_after_format=self.retry_after_format,
            rate_limit_headers=self.rate_limit_headers,
            redirect_status=self.redirect_status,
        )
